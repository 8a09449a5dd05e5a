-- The staging rehearsal's stand-in for a newer release's migration: expand-only (a new table
-- and a nullable column), so the binary that is still serving never notices it.
CREATE TABLE rehearsal_expand (id bigint PRIMARY KEY, note text);
ALTER TABLE experiments ADD COLUMN rehearsal_note text;
