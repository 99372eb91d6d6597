//! The audit log over HTTP at `/audit/v1`, for the service role only: entries (filtered by
//! table, row or actor, paged by id) and a check of the whole hash chain.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use basalt_query::Error as RestError;

use super::identity::identify;
use super::respond;
use crate::app::AppState;
use crate::auth::Role;
use crate::error::ApiResult;
use crate::store::audit_log::EntryQuery;

pub fn router() -> Router<AppState> {
    Router::new().route("/entries", get(entries)).route("/verify", get(verify))
}

/// The most entries one page returns.
const MAX_LIMIT: i64 = 1000;

async fn entries(State(app): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let run = async {
        let query = query.unwrap_or_default();
        service_only(&app, &headers, &query).await?;
        let q = entry_query(&query)?;
        Ok::<_, crate::error::ApiError>(Json(app.store.audit_entries(q).await?).into_response())
    };
    run.await.unwrap_or_else(respond::error)
}

async fn verify(State(app): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let run = async {
        service_only(&app, &headers, query.as_deref().unwrap_or_default()).await?;
        Ok::<_, crate::error::ApiError>(Json(app.store.audit_verify().await?).into_response())
    };
    run.await.unwrap_or_else(respond::error)
}

/// The log records what every user did: only the service role reads it.
async fn service_only(app: &AppState, headers: &HeaderMap, query: &str) -> ApiResult<()> {
    let ident = identify(app, headers, query).await?;
    if ident.role != Role::ServiceRole {
        let status = if ident.anonymous || ident.role == Role::Anon { 401 } else { 403 };
        return Err(RestError::new(status, "42501", "permission denied for the audit log")
            .hint("Only the service_role key may read the audit log.")
            .into());
    }
    Ok(())
}

/// `after`, `limit` (default 100, at most 1000), `table`, `row_id`, `actor_id`.
fn entry_query(query: &str) -> ApiResult<EntryQuery> {
    let mut q = EntryQuery { limit: 100, ..Default::default() };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let number = |what: &str| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| RestError::new(400, "PGRST100", format!("\"{what}\" must be a whole number of 0 or more, not \"{v}\"")))
        };
        match k.as_ref() {
            "after" => q.after = number("after")?,
            "limit" => q.limit = number("limit")?.min(MAX_LIMIT),
            "table" => q.table = Some(v.into_owned()),
            "row_id" => q.row_id = Some(v.into_owned()),
            "actor_id" => q.actor_id = Some(v.into_owned()),
            "apikey" => {}
            other => {
                return Err(RestError::new(400, "PGRST100", format!("unknown parameter \"{other}\""))
                    .hint("Use after, limit, table, row_id or actor_id.")
                    .into())
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_bounds_the_query() {
        let q = entry_query("table=todos&row_id=a%20b&after=5&limit=5000").expect("valid");
        assert_eq!((q.table.as_deref(), q.row_id.as_deref(), q.after, q.limit), (Some("todos"), Some("a b"), 5, MAX_LIMIT));
        assert!(entry_query("limit=-1").is_err());
        assert!(entry_query("limit=x").is_err());
        assert!(entry_query("order=id").is_err());
    }
}
