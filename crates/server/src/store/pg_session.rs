//! What PostgreSQL is told about each request before its query runs, as PostgREST tells it:
//! the role, the claims, the request, the search path and the `app.settings.*`, local to the
//! transaction; then the pre-request function, if one is configured.

use basalt_schema::ident::quote;

use crate::config::RestSettings;

/// The per-instance part of the request context, rendered once at start-up.
#[derive(Debug, Clone)]
pub struct SessionSql {
    /// Sets role, claims, request, search path (and app settings), local to the transaction:
    /// eleven parameters, all text.
    pub set: String,
    /// The same for plain reads, which run with it as one implicit transaction
    /// ([`super::pg_pipeline`]): without the audit log's client address and request id.
    pub set_read: String,
    pub app_settings: String,
    /// `SELECT "schema"."fn"()`, when `db-pre-request` is configured.
    pub pre_request: Option<String>,
}

/// Reads what SQL set for the response (PostgREST's `response.headers` and `response.status`).
pub const RESPONSE_SETTINGS: &str = "SELECT current_setting('response.headers', true), current_setting('response.status', true)";

impl SessionSql {
    pub fn new(rest: &RestSettings) -> SessionSql {
        // `request.jwt.claim.sub` ($9) too, as PostgREST did before v9: `auth.uid()` reads it
        // before the claims, which it would otherwise parse as JSON in every statement (8 % of
        // PostgreSQL's time for a get by id).
        // `search_path` ($7) is not set here: each exposed schema has its own pool whose
        // connections start with that schema's search path, which transactions cannot change for
        // good (`set_config(..., true)` ends with them). $7 stays so the parameters keep their order.
        let set = |audit: bool| {
            let mut set = String::from(
                "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
                 set_config('request.method', $3, true), set_config('request.path', $4, true), \
                 set_config('request.headers', $5, true), set_config('request.cookies', $6, true), $7::text, \
                 set_config('request.jwt.claim.sub', coalesce($9, ''), true)",
            );
            // The audit log's client address and request id ($10, $11): only writes record them.
            set.push_str(match audit {
                true => ", set_config('basalt.ip', coalesce($10, ''), true), set_config('basalt.request_id', coalesce($11, ''), true)",
                false => ", $10::text, $11::text",
            });
            set.push_str(match rest.app_settings.is_empty() {
                false => ", (SELECT count(set_config('app.settings.' || key, value, true)) FROM json_each_text($8::json))",
                true => ", $8::text",
            });
            set
        };
        SessionSql {
            set: set(true),
            set_read: set(false),
            app_settings: serde_json::to_string(&rest.app_settings).unwrap_or_else(|_| "{}".into()),
            pre_request: rest.pre_request.as_deref().and_then(function_sql).map(|f| format!("SELECT {f}()")),
        }
    }
}

/// `"schema", "extra", ...` for `search_path`.
pub fn search_path(schema: &str, extra: &[String]) -> String {
    let mut parts = vec![quote(schema)];
    for e in extra {
        if e != schema {
            parts.push(quote(e));
        }
    }
    parts.join(", ")
}

/// `fn` or `schema.fn` as quoted SQL; None when it is not a plain (optionally qualified) name.
pub fn function_sql(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.trim().split('.').collect();
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    match parts.as_slice() {
        [f] if ok(f) => Some(quote(f)),
        [s, f] if ok(s) && ok(f) => Some(format!("{}.{}", quote(s), quote(f))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(function_sql("api.check_request").as_deref(), Some("\"api\".\"check_request\""));
        assert_eq!(function_sql("check").as_deref(), Some("\"check\""));
        assert_eq!(function_sql("a.b.c"), None);
        assert_eq!(function_sql("x; drop table y"), None);
        assert_eq!(search_path("api", &["public".into(), "api".into()]), "\"api\", \"public\"");
    }
}
