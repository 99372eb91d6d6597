//! The one place errors become HTTP responses: PostgREST's shape for the data API,
//! the gateway's `{"message"}` for key problems, and a bare 500 whose cause is only logged.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A data-API error in PostgREST's shape.
    #[error(transparent)]
    Rest(#[from] basalt_query::Error),
    /// What Supabase's gateway answers for a missing or unknown `apikey`.
    #[error("{message}")]
    Gateway { status: u16, message: String },
    /// Anything unexpected: logged with its cause, answered without it.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// HTTP status for a PostgreSQL SQLSTATE, as PostgREST maps them.
pub fn status_for_sqlstate(code: &str, anon: bool) -> u16 {
    match code {
        "23505" | "23503" => 409,
        "42501" => {
            if anon {
                401
            } else {
                403
            }
        }
        "42P01" | "42883" => 404,
        "25006" => 405,
        "53400" | "42P17" => 500,
        // The administrator ended the session: PostgreSQL is restarting, so try again.
        "57P01" => 503,
        c if c.starts_with("08") || c.starts_with("53") => 503,
        c if c.starts_with("0L") || c.starts_with("0P") || c.starts_with("28") => 403,
        // A statement past a program limit is the request's size, not the server's fault: 413,
        // as PostgREST answered before version 12 (it now says 500).
        c if c.starts_with("54") => 413,
        c if ["09", "25", "2D", "38", "39", "3B", "40", "55", "57", "58", "F0", "HV", "XX"].iter().any(|p| c.starts_with(p)) => 500,
        "P0001" => 400,
        // `RAISE SQLSTATE 'PT404'`: the function picks the status.
        c if c.len() == 5 && c.starts_with("PT") && c[2..].bytes().all(|b| b.is_ascii_digit()) => c[2..].parse().unwrap_or(500),
        c if c.starts_with("P0") => 500,
        _ => 400,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Rest(e) => (e.status, serde_json::to_string(&e).unwrap_or_default()),
            ApiError::Gateway { status, message } => (status, serde_json::json!({ "message": message }).to_string()),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (500, serde_json::json!({"code": "XX000", "details": null, "hint": null, "message": "Internal server error"}).to_string())
            }
        };
        let mut res = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
        res.headers_mut().insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
        res
    }
}
