//! The audit listing's statement, built at run time from the filters in use.

use std::fmt::Write as _;

use uuid::Uuid;

use crate::model::Timestamp;
use crate::store::AuditQuery;

/// A value bound to a statement built at run time; each backend binds it in its own
/// representation.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlArg {
    /// A 64-bit integer.
    Int(i64),
    /// A UUID.
    Uuid(Uuid),
    /// Text.
    Text(String),
    /// An instant.
    Time(Timestamp),
}

/// `seq` as stored: sequence numbers beyond a signed 64-bit column cannot exist, so clamping
/// gives the same rows as the exact bound would.
pub fn seq_bound(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The audit listing for `query`, newest first, fetching one row more than a page: `select`
/// (a `SELECT` of the `audit` columns from `audit_events` ending in a `WHERE` clause that always
/// holds) followed by only the filters in use, so that each can drive its own index (an
/// `(? IS NULL OR col = ?)` form would defeat them all, and would make one generic plan serve
/// every combination). `placeholder` is the dialect's positional marker, followed by the
/// argument's number from 1 (`'?'` gives `?1`, `'$'` gives `$1`).
pub fn audit_list(select: &str, placeholder: char, query: &AuditQuery) -> (String, Vec<SqlArg>) {
    let mut sql = String::from(select);
    let mut args = Vec::new();
    let mut filter = |clause: &str, value: SqlArg| {
        args.push(value);
        // Writing to a `String` cannot fail.
        let _ = write!(sql, " AND {clause} {placeholder}{}", args.len());
    };
    if let Some(seq) = query.before_seq {
        filter("seq <", SqlArg::Int(seq_bound(seq)));
    }
    if let Some(actor) = query.actor_user_id {
        filter("actor_user_id =", SqlArg::Uuid(*actor.as_uuid()));
    }
    if let Some(action) = &query.action {
        filter("action =", SqlArg::Text(action.clone()));
    }
    if let Some(kind) = &query.resource_type {
        filter("resource_type =", SqlArg::Text(kind.clone()));
    }
    if let Some(id) = &query.resource_id {
        filter("resource_id =", SqlArg::Text(id.clone()));
    }
    if let Some(from) = query.from {
        filter("created_at >=", SqlArg::Time(from));
    }
    if let Some(to) = query.to {
        filter("created_at <", SqlArg::Time(to));
    }
    args.push(SqlArg::Int(i64::from(query.limit.get()) + 1));
    let _ = write!(sql, " ORDER BY seq DESC LIMIT {placeholder}{}", args.len());
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    #[test]
    fn only_the_filters_in_use_are_bound() {
        let actor = UserId::from(Uuid::from_u128(7));
        let query = AuditQuery {
            actor_user_id: Some(actor),
            action: Some("login".into()),
            ..AuditQuery::default()
        };
        let (sql, args) = audit_list("SELECT seq FROM audit_events WHERE true", '$', &query);
        assert_eq!(
            sql,
            "SELECT seq FROM audit_events WHERE true AND actor_user_id = $1 AND action = $2 \
             ORDER BY seq DESC LIMIT $3"
        );
        assert_eq!(
            args,
            vec![
                SqlArg::Uuid(Uuid::from_u128(7)),
                SqlArg::Text("login".into()),
                SqlArg::Int(i64::from(query.limit.get()) + 1),
            ]
        );
        assert_eq!(seq_bound(u64::MAX), i64::MAX);
    }
}
