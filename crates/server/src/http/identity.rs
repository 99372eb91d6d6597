//! Who is calling: the `apikey` gate (as Supabase's gateway) and the bearer token's role.

use axum::http::HeaderMap;
use basalt_query::Error as RestError;

use crate::app::AppState;
use crate::auth::jwt::{Claims, JwtError};
use crate::auth::Role;
use crate::error::{ApiError, ApiResult};

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub role: Role,
    /// The verified claims, for `auth.uid()`/`auth.jwt()` in policies.
    pub claims: Claims,
}

/// The `apikey` header (or `?apikey=`) must be a project key; the bearer token, when present,
/// decides the role, otherwise the apikey does.
pub fn identify(state: &AppState, headers: &HeaderMap, query: &str) -> ApiResult<Identity> {
    let apikey = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "apikey").map(|(_, v)| v.into_owned()))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::Gateway { status: 401, message: "No API key found in request".into() })?;
    let key = state.jwt.verify(&apikey).ok().filter(|(r, _)| matches!(r, Role::Anon | Role::ServiceRole));
    let Some((key_role, key_claims)) = key else {
        return Err(ApiError::Gateway { status: 401, message: "Invalid authentication credentials".into() });
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match bearer {
        None | Some("") => Ok(Identity { role: key_role, claims: key_claims }),
        Some(token) if token == apikey => Ok(Identity { role: key_role, claims: key_claims }),
        Some(token) => match state.jwt.verify(token) {
            Ok((role, claims)) => Ok(Identity { role, claims }),
            Err(JwtError::Expired) => Err(RestError::new(401, "PGRST303", "JWT expired").into()),
            Err(JwtError::UnknownRole(r)) => Err(RestError::new(401, "PGRST303", format!("role \"{r}\" does not exist")).into()),
            Err(JwtError::Invalid(m)) => Err(RestError::new(401, "PGRST301", m).into()),
        },
    }
}
