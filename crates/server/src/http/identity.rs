//! Who is calling: the `apikey` gate (as Supabase's gateway) and the bearer token's role,
//! read from the claims at `jwt-role-claim-key`, as PostgREST reads it.

use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use basalt_query::Error as RestError;

use crate::app::AppState;
use crate::auth::jwt::{Claims, JwtError};
use crate::auth::Role;
use crate::error::{ApiError, ApiResult};

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The kind of caller, for Basalt's own checks.
    pub role: Role,
    /// The database role the request runs as.
    pub db_role: String,
    /// The verified claims, for `auth.uid()`/`auth.jwt()` in policies; `role` is the role in effect.
    pub claims: Claims,
    /// No token at all: PostgreSQL answers 401 rather than 403 to a missing privilege.
    pub anonymous: bool,
    /// The claims as JSON, for policies (SQLite) and `request.jwt.claims` (PostgreSQL).
    pub claims_value: serde_json::Value,
    /// Shared with each request's database context rather than copied into it.
    pub claims_json: Arc<String>,
}

/// Identities of bearer tokens already seen: a signed-in user's token is verified, its role
/// resolved and its claims serialised once, not on every request.
#[derive(Default)]
pub struct IdentityCache(RwLock<foldhash::HashMap<String, Arc<Identity>>>);

const IDENTITY_CACHE_LIMIT: usize = 10_000;

impl IdentityCache {
    fn get(&self, token: &str) -> Option<Arc<Identity>> {
        let now = chrono::Utc::now().timestamp();
        let hit = self.0.read().ok()?.get(token).cloned()?;
        hit.claims.exp.is_none_or(|exp| exp.saturating_add(30) >= now).then_some(hit)
    }

    fn put(&self, token: &str, ident: Arc<Identity>) {
        if let Ok(mut m) = self.0.write() {
            if m.len() >= IDENTITY_CACHE_LIMIT {
                m.clear();
            }
            m.insert(token.to_string(), ident);
        }
    }
}

impl Identity {
    fn new(app: &AppState, db_role: String, mut claims: Claims, anonymous: bool) -> ApiResult<Identity> {
        let role = match db_role.as_str() {
            "service_role" => Role::ServiceRole,
            "anon" => Role::Anon,
            r if Some(r) == app.config.rest.anon_role.as_deref() => Role::Anon,
            "authenticated" => Role::Authenticated,
            // Only PostgreSQL has roles beyond Supabase's three (it checks they exist).
            other if !app.store.native_rls() => return Err(unknown_role(other)),
            _ => Role::Authenticated,
        };
        claims.role = db_role.clone();
        let claims_value = serde_json::to_value(&claims).map_err(ApiError::internal)?;
        let claims_json = Arc::new(claims_value.to_string());
        Ok(Identity { role, db_role, claims, anonymous, claims_value, claims_json })
    }

    /// A request without a token runs as `db-anon-role`, if there is one.
    fn anonymous(app: &AppState) -> ApiResult<Identity> {
        let role = app.config.rest.anon_role.clone().ok_or_else(|| RestError::new(401, "PGRST302", "Anonymous access is disabled"))?;
        let claims = Claims { role: role.clone(), sub: None, iss: None, iat: None, exp: None, extra: Default::default() };
        Identity::new(app, role, claims, true)
    }
}

/// Under Supabase's layout the `apikey` header (or `?apikey=`) must be a project key; the bearer
/// token, when present, decides the role, otherwise the apikey does. Without the gate
/// (PostgREST's layout) a request without a token is anonymous.
pub async fn identify(app: &AppState, headers: &HeaderMap, query: &str) -> ApiResult<Arc<Identity>> {
    let ident = identify_token(app, headers, query)?;
    let known = matches!(ident.db_role.as_str(), "anon" | "authenticated" | "service_role");
    // PostgreSQL names are at most 63 bytes: a longer role cannot exist.
    if !known && (ident.db_role.len() > 63 || !app.store.role_allowed(&ident.db_role).await?) {
        return Err(unknown_role(&ident.db_role));
    }
    Ok(ident)
}

/// 401 for a role the database does not have. The role is the caller's text: it is echoed (in
/// the body and `WWW-Authenticate`) no longer than a PostgreSQL name.
fn unknown_role(role: &str) -> ApiError {
    let shown: String = role.chars().take(63).collect();
    RestError::new(401, "PGRST303", format!("role \"{shown}\" does not exist")).into()
}

fn identify_token(app: &AppState, headers: &HeaderMap, query: &str) -> ApiResult<Arc<Identity>> {
    let apikey: Option<std::borrow::Cow<str>> = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(std::borrow::Cow::Borrowed)
        .or_else(|| form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "apikey").map(|(_, v)| v))
        .filter(|k| !k.is_empty());
    // Whether the key is a valid anon or service key; its claims are copied only when the
    // request runs as the key (no user token).
    let key = match &apikey {
        Some(k) => match app.jwt.role(k) {
            Ok(Role::Anon | Role::ServiceRole) => true,
            _ if app.config.rest.apikey_required() => {
                return Err(ApiError::Gateway { status: 401, message: "Invalid authentication credentials".into() })
            }
            _ => false,
        },
        None if app.config.rest.apikey_required() => {
            return Err(ApiError::Gateway { status: 401, message: "No API key found in request".into() });
        }
        None => false,
    };
    // A header that is not visible ASCII cannot hold a token: refused, not read as no header.
    let authorization = match headers.get("authorization") {
        Some(v) => Some(v.to_str().map_err(|_| RestError::new(401, "PGRST301", "Invalid JWT: the Authorization header is not ASCII"))?),
        None => None,
    };
    let bearer = authorization.map(str::trim).and_then(|v| {
        if v.eq_ignore_ascii_case("bearer") {
            Some("")
        } else {
            v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
        }
    });
    let from_key = || {
        let (r, claims) = app
            .jwt
            .verify(apikey.as_deref().unwrap_or_default())
            .map_err(|_| ApiError::Gateway { status: 401, message: "Invalid authentication credentials".into() })?;
        Identity::new(app, r.name().to_string(), claims, false).map(Arc::new)
    };
    match (bearer, key) {
        (None | Some(""), true) => from_key(),
        (Some(token), true) if Some(token) == apikey.as_deref() => from_key(),
        (Some(""), false) => Err(RestError::new(401, "PGRST301", "Empty JWT is sent in Authorization header").into()),
        (None, false) => Identity::anonymous(app).map(Arc::new),
        (Some(token), _) => {
            if let Some(hit) = app.identities.get(token) {
                return Ok(hit);
            }
            let claims = app.jwt.claims(token).map_err(|e| match e {
                JwtError::Expired => RestError::new(401, "PGRST303", "JWT expired").into(),
                JwtError::Audience => RestError::new(401, "PGRST303", "JWT not in audience").into(),
                JwtError::UnknownRole(r) => unknown_role(&r),
                JwtError::Invalid(m) => ApiError::from(RestError::new(401, "PGRST301", m)),
            })?;
            let value = serde_json::to_value(&claims).map_err(ApiError::internal)?;
            // The role at the claim key; else the standard `role` claim (Basalt's own sessions and
            // keys carry it); else the anon role. A non-string claim is used as its JSON text.
            let found = app
                .role_claim
                .value(&value)
                .filter(|v| !v.is_null())
                .or_else(|| value.get("role").filter(|r| r.as_str().is_some_and(|r| !r.is_empty())));
            let role = match found {
                Some(serde_json::Value::String(r)) => r.clone(),
                Some(v) => v.to_string(),
                None => app.config.rest.anon_role.clone().ok_or_else(|| RestError::new(401, "PGRST302", "Anonymous access is disabled"))?,
            };
            let anonymous = found.is_none();
            let ident = Arc::new(Identity::new(app, role, claims, anonymous)?);
            app.identities.put(token, ident.clone());
            Ok(ident)
        }
    }
}
