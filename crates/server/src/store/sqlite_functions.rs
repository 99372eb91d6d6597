//! SQL functions Basalt registers on every SQLite connection, standing in for what
//! PostgreSQL has built in: `now()`, `gen_random_uuid()`, `uuidv7()`, `@>`, `&&`, `~` and `@@`; and
//! `basalt_json(col)`, which hands a stored JSON column to `json_object` as JSON; and the
//! audit triggers' `basalt_audit_context(i)` and `basalt_audit_hash(...)`.

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::functions::{Context, FunctionFlags, SqlFnArg, SubType};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Result};
use serde_json::Value;

pub fn register(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("basalt_now", 0, flags, |_| Ok(now()))?;
    conn.create_scalar_function("now", 0, flags, |_| Ok(now()))?;
    conn.create_scalar_function("basalt_uuid", 0, flags, |_| Ok(uuid::Uuid::new_v4().hyphenated().to_string()))?;
    conn.create_scalar_function("basalt_uuid7", 0, flags, |_| Ok(uuid::Uuid::now_v7().hyphenated().to_string()))?;
    // Set per write by the thread running it; NULL means no user.
    conn.create_scalar_function("basalt_auth_uid", 0, flags, |_| Ok(ACTOR.with(|a| a.borrow().as_ref().and_then(|a| a.uid.clone()))))?;
    conn.create_scalar_function("basalt_audit_context", 1, flags, audit_context)?;
    conn.create_scalar_function("basalt_audit_hash", 14, flags | FunctionFlags::SQLITE_DETERMINISTIC, audit_hash)?;
    let det = flags | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("basalt_contains", 2, det, |ctx| json_pair(ctx).map(|p| p.map(|(a, b)| contains(&a, &b))))?;
    conn.create_scalar_function("basalt_overlaps", 2, det, |ctx| json_pair(ctx).map(|p| p.map(|(a, b)| overlaps(&a, &b))))?;
    conn.create_scalar_function("regexp", 2, det, regexp)?;
    // PostgreSQL's `inet(text)` cast, for the auth tables' addresses: SQLite keeps the text
    // (its own `CAST(… AS inet)` would read `127.0.0.1` as the number 127).
    conn.create_scalar_function("inet", 1, det, |ctx| ctx.get::<Option<String>>(0))?;
    conn.create_scalar_function("basalt_fts", 4, det, text_search)?;
    conn.create_scalar_function("basalt_json", 1, det | FunctionFlags::SQLITE_RESULT_SUBTYPE, stored_json)?;
    Ok(())
}

/// SQLite's JSON subtype: `json_object` and `json_group_array` embed such text as JSON.
const JSON_SUBTYPE: u32 = b'J' as u32;

/// A stored JSON column's text, marked as JSON after a validation pass. `json(col)` did the same
/// by parsing the text into a tree and printing it again, for every row of every read
/// (perf: 8 % of the 90/10 mix). Text that is not JSON comes back as plain text (a JSON string
/// in the response) rather than failing the read.
fn stored_json(ctx: &Context) -> Result<(SqlFnArg, SubType)> {
    let valid = match ctx.get_raw(0) {
        ValueRef::Text(t) => serde_json::from_slice::<serde::de::IgnoredAny>(t).is_ok(),
        _ => false,
    };
    Ok((ctx.get_arg(0), valid.then_some(JSON_SUBTYPE)))
}

/// Fixes `now()` for the transaction about to run on this thread (None: the wall clock).
pub fn set_transaction_time(at: Option<chrono::DateTime<chrono::Utc>>) {
    TX_NOW.with(|t| *t.borrow_mut() = at.map(|d| basalt_query::value::format_timestamptz(&d)));
}

/// Who writes, for `auth.uid()` defaults and the audit log's rows.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub uid: Option<String>,
    pub role: String,
    pub api_key_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Sets the actor of the write about to run on this thread (None: Basalt itself).
pub fn set_actor(actor: Option<Actor>) {
    ACTOR.with(|a| *a.borrow_mut() = actor);
}

/// `basalt_audit_context(i)`: the actor's id, role, API key id, IP, user agent and request id.
/// Writes Basalt makes itself (sign-up hooks) have the role `system`.
fn audit_context(ctx: &Context) -> Result<Option<String>> {
    let i: i64 = ctx.get(0)?;
    Ok(ACTOR.with(|a| match (a.borrow().as_ref(), i) {
        (None, 1) => Some("system".to_string()),
        (None, _) => None,
        (Some(a), 0) => a.uid.clone(),
        (Some(a), 1) => Some(a.role.clone()),
        (Some(a), 2) => a.api_key_id.clone(),
        (Some(a), 3) => a.ip.clone(),
        (Some(a), 4) => a.user_agent.clone(),
        (Some(a), 5) => a.request_id.clone(),
        _ => None,
    }))
}

/// `basalt_audit_hash(prev, id, at, ...)`: the chain hash the audit triggers store.
/// Text arguments are hashed where SQLite holds them, without a copy.
fn audit_hash(ctx: &Context) -> Result<String> {
    let text = |i: usize| -> Option<std::borrow::Cow<'_, str>> {
        match ctx.get_raw(i) {
            ValueRef::Null => None,
            ValueRef::Integer(n) => Some(n.to_string().into()),
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t)),
            other => Some(format!("{other:?}").into()),
        }
    };
    let prev = text(0).unwrap_or_default();
    let fields: Vec<_> = (1..14).map(text).collect();
    Ok(crate::audit::entry_hash(&prev, fields.iter().map(Option::as_deref)))
}

fn now() -> String {
    TX_NOW.with(|t| t.borrow().clone()).unwrap_or_else(|| basalt_query::value::format_timestamptz(&chrono::Utc::now()))
}

fn json_pair(ctx: &Context) -> Result<Option<(Value, Value)>> {
    let a: Option<String> = ctx.get(0)?;
    let b: Option<String> = ctx.get(1)?;
    match (a, b) {
        (Some(a), Some(b)) => {
            let parse = |s: &str| serde_json::from_str::<Value>(s).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)));
            Ok(Some((parse(&a)?, parse(&b)?)))
        }
        _ => Ok(None),
    }
}

/// PostgreSQL's jsonb `@>`: objects by key, arrays by membership, scalars by equality.
pub fn contains(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => y.iter().all(|(k, v)| x.get(k).is_some_and(|xv| contains(xv, v))),
        (Value::Array(x), Value::Array(y)) => y.iter().all(|v| x.iter().any(|xv| contains_elem(xv, v))),
        (Value::Array(x), scalar) if !scalar.is_object() => x.iter().any(|xv| xv == scalar),
        (x, y) => x == y,
    }
}

fn contains_elem(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => contains(a, b),
        _ => a == b,
    }
}

/// Array `&&`: at least one element in common.
pub fn overlaps(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.iter().any(|v| y.contains(v)),
        _ => false,
    }
}

thread_local! {
    /// The current transaction's start time: `now()` is constant within a transaction, as in PostgreSQL.
    static TX_NOW: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Who the write running on this thread is for.
    static ACTOR: RefCell<Option<Actor>> = const { RefCell::new(None) };
    static REGEX_CACHE: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

/// `text REGEXP pattern`, with compiled patterns cached per connection thread.
fn regexp(ctx: &Context) -> Result<Option<bool>> {
    let pattern: Option<String> = ctx.get(0)?;
    let text: Option<String> = ctx.get(1)?;
    let (Some(pattern), Some(text)) = (pattern, text) else { return Ok(None) };
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(&pattern) {
            let re = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| rusqlite::Error::UserFunctionError(format!("invalid regular expression: {e}").into()))?;
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(pattern.clone(), re);
        }
        Ok(cache.get(&pattern).map(|re| re.is_match(&text)))
    })
}

/// `basalt_fts(document, operator, config, query)`: `to_tsvector(config, document) @@
/// <operator's function>(config, query)`. The parsed query is kept for the next row.
fn text_search(ctx: &Context) -> Result<Option<bool>> {
    use basalt_textsearch::{Config, Kind, Query};
    let ValueRef::Text(doc) = ctx.get_raw(0) else { return Ok(None) };
    let doc = String::from_utf8_lossy(doc);
    let op: String = ctx.get(1)?;
    let config: Option<String> = ctx.get(2)?;
    let text: String = ctx.get(3)?;
    let kind = Kind::from_operator(&op).ok_or_else(|| rusqlite::Error::UserFunctionError(format!("unknown operator {op}").into()))?;
    let fail = |e: basalt_textsearch::Error| rusqlite::Error::UserFunctionError(Box::new(e));
    LAST_TEXT_QUERY.with(|last| {
        let mut last = last.borrow_mut();
        let key = (kind, config, text);
        if last.as_ref().is_none_or(|(k, _, _)| *k != key) {
            let cfg = Config::named(key.1.as_deref()).map_err(fail)?;
            let query = Query::parse(kind, &key.2, &cfg).map_err(fail)?;
            *last = Some((key, cfg, query));
        }
        let (_, cfg, query) = last.as_ref().expect("set above");
        Ok(Some(query.matches(&cfg.document(&doc))))
    })
}

type TextQueryKey = (basalt_textsearch::Kind, Option<String>, String);

thread_local! {
    static LAST_TEXT_QUERY: RefCell<Option<(TextQueryKey, basalt_textsearch::Config, basalt_textsearch::Query)>> = const { RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_json_is_embedded_as_json() {
        let conn = Connection::open_in_memory().expect("open");
        register(&conn).expect("register");
        let out: String = conn
            .query_row(
                "SELECT json_object('a', basalt_json('{\"x\": [1, true]}'), 'b', basalt_json('not json'), 'c', basalt_json(NULL))",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(out, r#"{"a":{"x": [1, true]},"b":"not json","c":null}"#);
    }

    #[test]
    fn containment_like_postgres() {
        assert!(contains(&json!({"a": 1, "b": {"c": 2}}), &json!({"b": {"c": 2}})));
        assert!(!contains(&json!({"a": 1}), &json!({"a": 2})));
        assert!(contains(&json!(["a", "b"]), &json!(["b"])));
        assert!(!contains(&json!(["a"]), &json!(["a", "c"])));
        assert!(contains(&json!([1, [2, 3]]), &json!([[3]])));
        assert!(overlaps(&json!(["a", "b"]), &json!(["c", "b"])));
    }
}
