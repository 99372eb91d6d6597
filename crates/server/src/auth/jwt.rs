//! HS256 JWTs exactly as Supabase issues them: the project keys (anon, service_role) and,
//! later, user access tokens. Verification results are cached per token.

use std::sync::RwLock;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Fixed issue and expiry times for the project keys, so every instance (and `basalt keys`)
/// derives the same keys from the same secret, as Supabase's long-lived keys are.
const KEY_IAT: i64 = 1_735_689_600;
const KEY_EXP: i64 = 2_366_841_600;
const CACHE_LIMIT: usize = 10_000;

/// The PostgreSQL role a request runs as (the names are Supabase's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum Role {
    Anon,
    Authenticated,
    ServiceRole,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "anon" => Some(Role::Anon),
            "authenticated" => Some(Role::Authenticated),
            "service_role" => Some(Role::ServiceRole),
            _ => None,
        }
    }
}

/// The claims Basalt reads; everything else is kept in `extra` for `auth.jwt()`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Empty when the token names no role (PostgREST tokens may keep it under another key).
    #[serde(default)]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Optional, as PostgREST accepts tokens without one; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Why a token was refused (mapped to PGRST301/PGRST303 at the HTTP edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("JWT expired")]
    Expired,
    #[error("{0}")]
    Invalid(String),
    #[error("unknown role {0}")]
    UnknownRole(String),
    /// `jwt_aud` is set and the token's `aud` does not name it.
    #[error("JWT not in audience")]
    Audience,
}

/// An opaque key: `prefix` and 32 characters of HMAC-SHA256(secret, prefix), base64url.
fn opaque_key(secret: &[u8], prefix: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(prefix.as_bytes());
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{prefix}{}", &tag[..32])
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// PostgREST's `jwt-aud`: tokens carrying an `aud` must name it.
    audience: Option<String>,
    /// Keyed with foldhash: tokens are long, and SipHash over them showed in profiles of reads.
    cache: RwLock<foldhash::HashMap<String, Claims>>,
    /// Supabase's newer opaque keys (`sb_publishable_…`, `sb_secret_…`), each with the project
    /// key (JWT) it stands for; derived from the secret, so every instance has the same ones.
    opaque: [(String, String); 2],
    /// Signs values the server hands out and must get back unchanged (the OAuth `state`):
    /// derived from the secret, apart from the JWT key so neither stands in for the other.
    seal_key: [u8; 32],
}

impl JwtKeys {
    /// `secret` is the raw key (already base64-decoded when `jwt_secret_is_base64`).
    pub fn new(secret: &[u8], audience: Option<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked by hand (with 30 s leeway) so tokens without `exp` pass, as in PostgREST.
        validation.validate_exp = false;
        // `nbf` is checked, with the same leeway as `exp`.
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.validate_aud = false;
        validation.required_spec_claims = Default::default();
        let mut keys = JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            audience,
            cache: RwLock::new(foldhash::HashMap::default()),
            opaque: Default::default(),
            seal_key: {
                use hmac::Mac;
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
                mac.update(b"basalt seal key");
                mac.finalize().into_bytes().into()
            },
        };
        keys.opaque = [
            (opaque_key(secret, "sb_publishable_"), keys.project_key("anon")),
            (opaque_key(secret, "sb_secret_"), keys.project_key("service_role")),
        ];
        keys
    }

    /// The opaque key for `role` ("anon": `sb_publishable_…`, "service_role": `sb_secret_…`),
    /// which the API takes wherever it takes that role's project key.
    pub fn opaque_key(&self, role: &str) -> &str {
        &self.opaque[usize::from(role == "service_role")].0
    }

    /// The project key an opaque key stands for, compared in constant time; other tokens as they are.
    fn resolve<'a>(&'a self, token: &'a str) -> &'a str {
        for (opaque, jwt) in &self.opaque {
            if opaque.len() == token.len() && bool::from(subtle::ConstantTimeEq::ct_eq(opaque.as_bytes(), token.as_bytes())) {
                return jwt;
            }
        }
        token
    }

    /// The `aud` of the access tokens Basalt issues: `jwt_aud` when set, else Supabase's.
    pub fn issued_audience(&self) -> &str {
        self.audience.as_deref().unwrap_or("authenticated")
    }

    /// `payload` with an HMAC-SHA256 tag, both base64url: `payload.tag`.
    pub fn seal(&self, payload: &[u8]) -> String {
        use base64::Engine;
        use hmac::Mac;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.seal_key).expect("HMAC takes a key of any length");
        mac.update(payload);
        format!("{}.{}", b64.encode(payload), b64.encode(mac.finalize().into_bytes()))
    }

    /// The payload of a [`seal`](Self::seal)ed value, if its tag is right (compared in constant time).
    pub fn unseal(&self, sealed: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        use hmac::Mac;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, tag) = sealed.split_once('.')?;
        let (payload, tag) = (b64.decode(payload).ok()?, b64.decode(tag).ok()?);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.seal_key).expect("HMAC takes a key of any length");
        mac.update(&payload);
        mac.verify_slice(&tag).ok()?;
        Some(payload)
    }

    /// Signs claims with the project secret.
    pub fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    /// The project key for `role` ("anon" or "service_role").
    pub fn project_key(&self, role: &str) -> String {
        self.sign(&Claims {
            role: role.into(),
            sub: None,
            iss: Some("basalt".into()),
            iat: Some(KEY_IAT),
            exp: Some(KEY_EXP),
            extra: Default::default(),
        })
    }

    /// Verifies a token for Basalt's own APIs: as [`JwtKeys::claims`], and a role Basalt knows.
    pub fn verify(&self, token: &str) -> Result<(Role, Claims), JwtError> {
        let claims = self.claims(token)?;
        let role = Role::parse(&claims.role).ok_or_else(|| JwtError::UnknownRole(claims.role.clone()))?;
        Ok((role, claims))
    }

    /// The role of a token [`JwtKeys::verify`] accepts, without copying its claims: API keys
    /// come with every request, and mostly only their validity matters.
    pub fn role(&self, token: &str) -> Result<Role, JwtError> {
        let token = self.resolve(token);
        match self.cached(token, |c| Role::parse(&c.role).ok_or_else(|| JwtError::UnknownRole(c.role.clone()))) {
            Some(role) => role,
            None => self.verify(token).map(|(role, _)| role),
        }
    }

    /// `f` of the cached claims of a token checked before and not expired since.
    fn cached<R>(&self, token: &str, f: impl FnOnce(&Claims) -> R) -> Option<R> {
        let now = chrono::Utc::now().timestamp();
        self.cache.read().ok()?.get(token).filter(|c| fresh(c, now)).map(f)
    }

    /// Checks a token: HS256 only (so `alg: none` and other algorithms fail), signature, expiry
    /// with 30 s leeway and the audience. Results are cached per token until they expire.
    pub fn claims(&self, token: &str) -> Result<Claims, JwtError> {
        let token = self.resolve(token);
        if let Some(c) = self.cached(token, Claims::clone) {
            return Ok(c);
        }
        if has_critical_header(token) {
            return Err(JwtError::Invalid("Invalid JWT: unsupported critical header parameters (crit)".into()));
        }
        let now = chrono::Utc::now().timestamp();
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::Invalid("No suitable key or wrong key type".into()),
            _ => JwtError::Invalid(format!("Invalid JWT: {e}")),
        })?;
        if !fresh(&data.claims, now) {
            return Err(JwtError::Expired);
        }
        if let Some(want) = &self.audience {
            let ok = match data.claims.extra.get("aud") {
                None => true,
                Some(serde_json::Value::String(a)) => a == want,
                Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
                Some(_) => false,
            };
            if !ok {
                return Err(JwtError::Audience);
            }
        }
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(token.to_string(), data.claims.clone());
        }
        Ok(data.claims)
    }
}

/// Whether the header lists extensions the token's reader must understand (`crit`, RFC 7515
/// 4.1.11). Basalt understands none, so such a token is refused rather than read without them.
fn has_critical_header(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')) else { return false };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).is_ok_and(|h| h.contains_key("crit"))
}

/// Not expired, with 30 s of leeway for clocks that differ.
fn fresh(c: &Claims, now: i64) -> bool {
    c.exp.is_none_or(|exp| exp.saturating_add(30) >= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

    #[test]
    fn opaque_keys_stand_for_the_project_keys() {
        let k = JwtKeys::new(SECRET.as_bytes(), None);
        let (public, secret) = (k.opaque_key("anon").to_string(), k.opaque_key("service_role").to_string());
        assert!(public.starts_with("sb_publishable_") && secret.starts_with("sb_secret_"), "{public} {secret}");
        assert_eq!(public, JwtKeys::new(SECRET.as_bytes(), None).opaque_key("anon"), "stable across instances");
        assert_eq!((k.role(&public).unwrap(), k.verify(&secret).unwrap().0), (Role::Anon, Role::ServiceRole));
        let other = JwtKeys::new(b"another-secret-another-secret-another-secret", None);
        assert_ne!(other.opaque_key("anon"), public);
        assert!(k.verify(other.opaque_key("service_role")).is_err(), "another project's key");
        assert!(k.verify(&format!("{}x", &secret[..secret.len() - 1])).is_err());
    }

    #[test]
    fn project_keys_verify_and_are_stable() {
        let k = JwtKeys::new(SECRET.as_bytes(), None);
        assert_eq!(k.project_key("anon"), JwtKeys::new(SECRET.as_bytes(), None).project_key("anon"));
        assert_eq!(k.verify(&k.project_key("service_role")).unwrap().0, Role::ServiceRole);
    }

    #[test]
    fn refuses_bad_tokens() {
        let k = JwtKeys::new(SECRET.as_bytes(), None);
        let other = JwtKeys::new(b"another-secret-that-is-long-enough-000000", None);
        assert!(matches!(k.verify(&other.project_key("anon")), Err(JwtError::Invalid(_))));
        let expired = k.sign(&Claims { role: "anon".into(), sub: None, iss: None, iat: None, exp: Some(1000), extra: Default::default() });
        assert_eq!(k.verify(&expired).unwrap_err(), JwtError::Expired);
        let weird =
            k.sign(&Claims { role: "postgres".into(), sub: None, iss: None, iat: None, exp: Some(KEY_EXP), extra: Default::default() });
        assert!(matches!(k.verify(&weird), Err(JwtError::UnknownRole(_))));
        // alg: none
        use base64_like::b64;
        let none = format!("{}.{}.", b64("{\"alg\":\"none\",\"typ\":\"JWT\"}"), b64("{\"role\":\"service_role\",\"exp\":2366841600}"));
        assert!(k.verify(&none).is_err());
        assert!(k.verify("garbage").is_err());
        // A critical extension Basalt does not know, with a valid signature.
        use hmac::Mac;
        let signing = format!("{}.{}", b64(r#"{"alg":"HS256","typ":"JWT","crit":["exp-ext"],"exp-ext":1}"#), b64(r#"{"role":"anon"}"#));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(signing.as_bytes());
        let sig = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, mac.finalize().into_bytes());
        let crit = format!("{signing}.{sig}");
        assert!(matches!(k.verify(&crit), Err(JwtError::Invalid(m)) if m.contains("crit")), "crit refused");
        let plain = format!("{}.{}", b64(r#"{"alg":"HS256","typ":"JWT"}"#), b64(r#"{"role":"anon"}"#));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(plain.as_bytes());
        let sig = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, mac.finalize().into_bytes());
        assert_eq!(k.verify(&format!("{plain}.{sig}")).unwrap().0, Role::Anon, "the same token without crit passes");
    }

    #[test]
    fn role_agrees_with_verify_before_and_after_caching() {
        let k = JwtKeys::new(SECRET.as_bytes(), None);
        let anon = k.project_key("anon");
        assert_eq!(k.role(&anon).unwrap(), Role::Anon);
        assert_eq!(k.role(&anon).unwrap(), Role::Anon, "from the cache");
        let weird =
            k.sign(&Claims { role: "postgres".into(), sub: None, iss: None, iat: None, exp: Some(KEY_EXP), extra: Default::default() });
        assert!(matches!(k.role(&weird), Err(JwtError::UnknownRole(_))));
        let expired = k.sign(&Claims { role: "anon".into(), sub: None, iss: None, iat: None, exp: Some(1000), extra: Default::default() });
        assert_eq!(k.role(&expired).unwrap_err(), JwtError::Expired);
        assert!(k.role("garbage").is_err());
    }

    mod base64_like {
        /// Unpadded base64url, enough to forge test tokens.
        pub fn b64(s: &str) -> String {
            const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
