//! Auth errors in GoTrue's shape: `code`/`error_code` strings, `msg`/`message`, and on the token
//! endpoint also OAuth's `error`/`error_description`, so auth-js builds the right AuthApiError.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// `weak_password.reasons`
    pub reasons: Option<Vec<&'static str>>,
    /// The token endpoint also speaks OAuth.
    pub oauth_error: Option<&'static str>,
}

pub type AuthResult<T> = Result<T, AuthError>;

impl AuthError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AuthError { status, code, message: message.into(), reasons: None, oauth_error: None }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        AuthError::new(400, "validation_failed", message)
    }

    pub fn invalid_credentials() -> Self {
        let mut e = AuthError::new(400, "invalid_credentials", "Invalid login credentials");
        e.oauth_error = Some("invalid_grant");
        e
    }

    pub fn weak_password(min: usize) -> Self {
        let mut e = AuthError::new(422, "weak_password", format!("Password should be at least {min} characters."));
        e.reasons = Some(vec!["length"]);
        e
    }

    pub fn not_admin() -> Self {
        AuthError::new(403, "not_admin", "User not allowed")
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %e, "auth internal error");
        AuthError::new(500, "unexpected_failure", "Unexpected failure, please check server logs for more information")
    }
}

impl From<crate::error::ApiError> for AuthError {
    fn from(e: crate::error::ApiError) -> Self {
        match e {
            crate::error::ApiError::Rest(r) if r.code == "23505" => {
                AuthError::new(422, "email_exists", "A user with this email address has already been registered")
            }
            crate::error::ApiError::Rest(r) if r.status < 500 => AuthError::new(r.status, "validation_failed", r.message),
            other => AuthError::internal(other),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "error_code": self.code, "msg": self.message, "message": self.message });
        if let Some(r) = &self.reasons {
            body["weak_password"] = json!({ "reasons": r });
        }
        if let Some(o) = self.oauth_error {
            body["error"] = json!(o);
            body["error_description"] = json!(self.message);
        }
        let mut res = (StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert("x-supabase-api-version", HeaderValue::from_static("2024-01-01"));
        if let Ok(v) = HeaderValue::from_str(self.code) {
            h.insert("x-sb-error-code", v);
        }
        res
    }
}
