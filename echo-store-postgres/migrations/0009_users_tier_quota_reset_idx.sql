-- no-transaction
-- Billing: users of a tier whose quota period ends in a range.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_tier_quota_reset_idx
    ON users (pricing_tier, quota_reset_at);
