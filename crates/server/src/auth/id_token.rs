//! `grant_type=id_token` (`signInWithIdToken`): an ID token a provider gave the app directly
//! (Google One Tap or a native Google sign-in, Sign in with Apple), checked against the
//! provider's published keys, its issuer, and the app's client id as the audience.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::error::{AuthError, AuthResult};
use super::oauth::{http, External};
use super::service::{AuthService, Client, Session};

/// How long a provider's keys are trusted before they are fetched again (a token naming an
/// unknown key fetches them at once).
const KEYS_TTL: Duration = Duration::from_secs(3600);

/// (issuers, keys URL) per provider.
fn published(provider: &str) -> Option<(&'static [&'static str], &'static str)> {
    match provider {
        "google" => Some((&["https://accounts.google.com", "accounts.google.com"], "https://www.googleapis.com/oauth2/v3/certs")),
        "apple" => Some((&["https://appleid.apple.com"], "https://appleid.apple.com/auth/keys")),
        _ => None,
    }
}

fn bad_token(why: impl std::fmt::Display) -> AuthError {
    AuthError::new(400, "bad_jwt", format!("Bad ID token: {why}"))
}

/// The keys of each provider, by URL, with when they were fetched.
fn key_cache() -> &'static Mutex<HashMap<String, (Instant, JwkSet)>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<String, (Instant, JwkSet)>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

async fn key(url: &str, kid: &str) -> AuthResult<Jwk> {
    let cached = key_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(url).filter(|(at, _)| at.elapsed() < KEYS_TTL).and_then(|(_, set)| set.find(kid).cloned()));
    if let Some(k) = cached {
        return Ok(k);
    }
    let set: JwkSet = http()
        .get(url)
        .send()
        .await
        .map_err(|e| AuthError::internal(format!("fetching {url}: {e}")))?
        .json()
        .await
        .map_err(|e| AuthError::internal(format!("reading {url}: {e}")))?;
    let found = set.find(kid).cloned();
    if let Ok(mut c) = key_cache().lock() {
        c.insert(url.to_string(), (Instant::now(), set));
    }
    found.ok_or_else(|| bad_token("no published key has its kid"))
}

impl AuthService {
    /// POST /token?grant_type=id_token: `{provider, id_token, nonce}`.
    pub async fn id_token_grant(&self, body: &Value, client: &Client<'_>) -> AuthResult<Session> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let (Some(provider), Some(token)) = (text("provider"), text("id_token")) else {
            return Err(AuthError::validation("provider and id_token are required"));
        };
        self.rate_limit("token", client, None).await?;
        let (issuers, keys_url) =
            published(provider).ok_or_else(|| AuthError::validation(format!("Custom OIDC provider \"{provider}\" not allowed")))?;
        let p = self.provider(provider)?;
        let header = jsonwebtoken::decode_header(token).map_err(bad_token)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(bad_token("unsupported algorithm"));
        }
        let kid = header.kid.ok_or_else(|| bad_token("no kid"))?;
        let jwk = key(p.jwks_url.as_deref().unwrap_or(keys_url), &kid).await?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(bad_token)?;
        let mut validation = Validation::new(header.alg);
        match &p.issuer {
            Some(i) => validation.set_issuer(&[i]),
            None => validation.set_issuer(issuers),
        }
        let audiences: Vec<&str> = p.client_ids().collect();
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation).map_err(bad_token)?.claims;
        // The token carries the SHA-256 (hex) of the nonce the request brings raw: a leaked
        // token is no use without the raw nonce.
        match (claims.get("nonce").and_then(Value::as_str), text("nonce")) {
            (None, None) => {}
            (Some(want), Some(given)) => {
                if !bool::from(subtle::ConstantTimeEq::ct_eq(want.as_bytes(), super::tokens::sha256_hex(given).as_bytes())) {
                    return Err(bad_token("nonces mismatch"));
                }
            }
            _ => return Err(bad_token("passed nonce and nonce in id_token should either both exist or not")),
        }
        let sub = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| bad_token("no sub"))?.to_string();
        let email = claims.get("email").and_then(Value::as_str).map(str::to_string);
        // Apple writes booleans as strings.
        let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || claims.get("email_verified").and_then(Value::as_str) == Some("true");
        let name = claims.get("name").and_then(Value::as_str);
        let picture = claims.get("picture").and_then(Value::as_str);
        let data = json!({
            "iss": claims.get("iss"), "sub": sub, "provider_id": sub,
            "email": email, "email_verified": verified, "phone_verified": false,
            "name": name, "full_name": name, "picture": picture, "avatar_url": picture,
        });
        let user = self.sign_in_external(provider, External { id: sub, email, email_verified: verified, data }, client, None).await?;
        self.start_session(&user, "oauth", client).await
    }
}
