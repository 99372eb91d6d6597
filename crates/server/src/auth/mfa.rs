//! Multi-factor authentication with TOTP, as GoTrue's `/factors` endpoints: enroll a factor
//! (secret, `otpauth://` URI and QR code), challenge it, verify a code to raise the session
//! to `aal2`, unenroll. Each code is accepted once: its time step is spent with the challenge.

use serde_json::{json, Value};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::error::{AuthError, AuthResult};
use super::service::{now_ts, AuthService, Caller, Client, Session};
use crate::store::mfa_sql as q;
use crate::store::portable::{Row, RowExt};

/// RFC 6238 as authenticator apps expect it: SHA-1, 6 digits, 30 s steps; one step of skew.
const DIGITS: u8 = 6;
const STEP: u64 = 30;
const SKEW: u16 = 1;
/// How long a challenge can be verified (GoTrue's `MFA_CHALLENGE_EXPIRY_DURATION`).
const CHALLENGE_SECONDS: i64 = 300;
/// At most this many factors per user (GoTrue's `MFA_MAX_ENROLLED_FACTORS`).
const MAX_FACTORS: usize = 10;
/// After this many wrong codes within [`LOCKOUT_MINUTES`], a factor takes no more until the
/// window has passed since the last one: with the per-user rate limit alone, an attacker who
/// holds the password could try 43,000 codes a day.
const MAX_FAILURES: i64 = 5;
const LOCKOUT_MINUTES: i64 = 15;
/// Unverified factors older than this lapse at the next enrolment.
const UNVERIFIED_SECONDS: i64 = 300;

fn totp(secret: Vec<u8>) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP)
        .with_skew(SKEW)
        .with_secret(secret)
        .build_noncompliant()
}

fn factor_not_found() -> AuthError {
    AuthError::new(404, "mfa_factor_not_found", "Factor not found")
}

/// A factor as the user object and the admin API show it (never its secret).
pub fn factor_json(f: &Row) -> Value {
    json!({
        "id": f.str("id"),
        "friendly_name": f.str("friendly_name").unwrap_or_default(),
        "factor_type": f.str("factor_type"),
        "status": f.str("status"),
        "phone": "",
        "last_challenged_at": f.str("last_challenged_at"),
        "created_at": f.str("created_at"),
        "updated_at": f.str("updated_at"),
    })
}

/// The `aal` an `amr` list earns: a second factor among its methods makes it `aal2`.
pub fn aal_of(amr: &Value) -> &'static str {
    let second = amr.as_array().is_some_and(|a| a.iter().any(|m| m.get("method").and_then(Value::as_str) == Some("totp")));
    if second {
        "aal2"
    } else {
        "aal1"
    }
}

impl AuthService {
    /// Factors of a user, for `user.factors` and the admin API.
    pub async fn factors(&self, user_id: &str) -> AuthResult<Vec<Row>> {
        Ok(self.store.batch(vec![q::factors_of(user_id)]).await?.pop().unwrap_or_default())
    }

    async fn own_factor(&self, user_id: &str, factor_id: &str) -> AuthResult<Row> {
        if uuid::Uuid::parse_str(factor_id).is_err() {
            return Err(AuthError::new(404, "validation_failed", "factor_id must be an UUID"));
        }
        self.store.batch(vec![q::factor(user_id, factor_id)]).await?.pop().and_then(|mut r| r.pop()).ok_or_else(factor_not_found)
    }

    /// POST /factors: a new, unverified TOTP factor. The secret is shown this once.
    pub async fn enroll(&self, caller: &Caller, user: &Row, body: &Value) -> AuthResult<Value> {
        if user.flag("is_anonymous") {
            return Err(AuthError::new(403, "no_authorization", "Anonymous users cannot enroll MFA factors"));
        }
        match body.get("factor_type").and_then(Value::as_str) {
            Some("totp") => {}
            Some("phone") => return Err(AuthError::new(422, "mfa_phone_enroll_not_enabled", "MFA enroll is disabled for Phone")),
            Some("webauthn") => return Err(AuthError::new(422, "mfa_webauthn_enroll_not_enabled", "MFA enroll is disabled for WebAuthn")),
            _ => return Err(AuthError::validation("factor_type needs to be totp, phone, or webauthn")),
        }
        let user_id = user.str("id").unwrap_or_default();
        let name = body.get("friendly_name").and_then(Value::as_str).unwrap_or_default().to_string();
        let issuer = match body.get("issuer").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(i) => i.to_string(),
            None => url_host(&self.settings.site_url).unwrap_or_else(|| "basalt".to_string()),
        };
        let before = basalt_query::value::format_timestamptz(&(chrono::Utc::now() - chrono::Duration::seconds(UNVERIFIED_SECONDS)));
        self.store.batch(vec![q::delete_stale_unverified(&user_id, &before)]).await?;
        let existing = self.factors(&user_id).await?;
        if existing.iter().any(|f| f.str("status").as_deref() == Some("verified")) && caller.aal != "aal2" {
            return Err(AuthError::new(403, "insufficient_aal", "AAL2 required to enroll a new factor"));
        }
        if existing.len() >= MAX_FACTORS {
            return Err(AuthError::new(
                422,
                "too_many_enrolled_mfa_factors",
                "Maximum number of verified factors reached, unenroll to continue",
            ));
        }
        // Blank names may repeat (an abandoned enrolment retried), as GoTrue's index allows.
        if !name.trim().is_empty() && existing.iter().any(|f| f.str("friendly_name").unwrap_or_default() == name) {
            return Err(AuthError::new(
                422,
                "mfa_factor_name_conflict",
                format!("A factor with the friendly name \"{name}\" for this user already exists"),
            ));
        }
        let secret = Secret::from(rand::random::<[u8; 20]>().to_vec()).to_base32();
        let account = user.str("email").filter(|e| !e.is_empty()).or_else(|| user.str("phone")).unwrap_or_else(|| user_id.clone());
        let uri = format!(
            "otpauth://totp/{}:{}?algorithm=SHA1&digits={DIGITS}&issuer={}&period={STEP}&secret={secret}",
            super::service::urlencode(&issuer),
            super::service::urlencode(&account),
            super::service::urlencode(&issuer),
        );
        let id = uuid::Uuid::new_v4().to_string();
        self.store.batch(vec![q::insert_factor(&id, &user_id, &name, &secret)]).await.map_err(|e| match e {
            // Two enrolments with one name at once: the unique index decides.
            crate::error::ApiError::Rest(r) if r.code == "23505" => AuthError::new(
                422,
                "mfa_factor_name_conflict",
                format!("A factor with the friendly name \"{name}\" for this user already exists"),
            ),
            other => AuthError::from(other),
        })?;
        Ok(json!({
            "id": id,
            "type": "totp",
            "friendly_name": name,
            "totp": {"qr_code": qr_svg(&uri)?, "secret": secret, "uri": uri},
        }))
    }

    /// POST /factors/{id}/challenge
    pub async fn challenge(&self, caller: &Caller, factor_id: &str, client: &Client<'_>) -> AuthResult<Value> {
        self.rate_limit("mfa", client, None).await?;
        let factor = self.own_factor(&caller.user_id, factor_id).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let fid = factor.str("id").unwrap_or_default();
        self.store.batch(vec![q::insert_challenge(&id, &fid, client.ip), q::touch_factor_challenged(&fid)]).await?;
        Ok(json!({"id": id, "type": "totp", "expires_at": now_ts() + CHALLENGE_SECONDS}))
    }

    /// POST /factors/{id}/verify: a right code spends the challenge and raises the caller's
    /// session to `aal2`; the answer is that session with new tokens.
    pub async fn verify_factor(
        &self,
        caller: &Caller,
        user: &Row,
        factor_id: &str,
        body: &Value,
        client: &Client<'_>,
    ) -> AuthResult<Session> {
        // Per address and per user (the e-mail rate), so many addresses do not buy more guesses.
        self.rate_limit("mfa", client, Some(&caller.user_id)).await?;
        let factor = self.own_factor(&caller.user_id, factor_id).await?;
        let challenge_id = body.get("challenge_id").and_then(Value::as_str).unwrap_or_default();
        let code = body.get("code").and_then(Value::as_str).unwrap_or_default().trim().to_string();
        if code.is_empty() {
            return Err(AuthError::validation("Code needs to be non-empty"));
        }
        let challenge_not_found = || AuthError::new(422, "mfa_factor_not_found", "MFA factor with the provided challenge ID not found");
        if uuid::Uuid::parse_str(challenge_id).is_err() {
            return Err(challenge_not_found());
        }
        let fid = factor.str("id").unwrap_or_default();
        let challenge = self
            .store
            .batch(vec![q::challenge(&fid, challenge_id, client.ip)])
            .await?
            .pop()
            .and_then(|mut r| r.pop())
            .ok_or_else(challenge_not_found)?;
        if challenge.str("verified_at").is_none() && !challenge.flag("same_ip") {
            return Err(AuthError::new(422, "mfa_ip_address_mismatch", "Challenge and verify IP addresses mismatch."));
        }
        let created = challenge.str("created_at").and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.timestamp());
        if challenge.str("verified_at").is_some() || created.is_none_or(|c| now_ts() - c > CHALLENGE_SECONDS) {
            return Err(AuthError::new(
                422,
                "mfa_challenge_expired",
                format!("MFA challenge {challenge_id} has expired, verify against another challenge or create a new challenge."),
            ));
        }
        let window = basalt_query::value::format_timestamptz(&(chrono::Utc::now() - chrono::Duration::minutes(LOCKOUT_MINUTES)));
        let locked =
            factor.int("failed_attempts").unwrap_or(0) >= MAX_FAILURES && factor.str("last_failed_at").is_some_and(|at| at >= window);
        if locked {
            return Err(AuthError::new(
                429,
                "over_request_rate_limit",
                format!("Too many wrong codes for this factor; try again in {LOCKOUT_MINUTES} minutes"),
            ));
        }
        let wrong = || async {
            self.store.batch(vec![q::count_failure(&fid, &window)]).await?;
            AuthResult::Ok(AuthError::new(422, "mfa_verification_failed", "Invalid TOTP code entered"))
        };
        let secret = factor
            .str("secret")
            .and_then(|s| Secret::try_from_base32(s).ok())
            .ok_or_else(|| AuthError::internal("unreadable TOTP secret"))?;
        let Some(step) = totp(secret.as_ref().to_vec()).check_current(&code) else {
            return Err(wrong().await?);
        };
        let step = step as i64;
        if factor.int("last_used_step").is_some_and(|last| last >= step) {
            return Err(wrong().await?);
        }
        let session_id =
            caller.session_id.clone().ok_or_else(|| AuthError::new(403, "session_not_found", "The access token has no session"))?;
        let session = self
            .one(crate::store::auth_sql::session(&session_id))
            .await?
            .ok_or_else(|| AuthError::new(403, "session_not_found", "Session from session_id claim in JWT does not exist"))?;
        let mut amr = vec![json!({"method": "totp", "timestamp": now_ts()})];
        amr.extend(
            session
                .json("amr")
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m.get("method").and_then(Value::as_str) != Some("totp"))
                .cloned(),
        );
        let amr = Value::Array(amr);
        let refresh = super::tokens::random(40);
        let user_id = caller.user_id.clone();
        // The challenge and the code's step are spent first, on their own: a second verify of
        // either (a double submit, a replay) changes nothing of the session.
        let spent = self.store.batch(q::spend(&fid, challenge_id, step)).await?;
        if spent.iter().any(Vec::is_empty) {
            return Err(AuthError::new(422, "mfa_verification_failed", "Invalid TOTP code entered"));
        }
        let stmts = vec![
            q::raise_session(&session_id, amr.clone()),
            q::delete_weaker_sessions(&user_id, &session_id),
            q::delete_other_unverified(&user_id, &fid),
            // The session's aal1 refresh tokens go: none of them may continue it at aal2.
            crate::store::auth_sql::delete_session_tokens(&session_id),
            crate::store::auth_sql::insert_refresh_token(&super::tokens::sha256_hex(&refresh), &user_id, &session_id, None),
            crate::store::auth_sql::auth_event(
                "verification_attempted",
                "user",
                &user_id,
                &user.str("email").unwrap_or_default(),
                Some(json!({"factor_id": fid, "factor_type": "totp"})),
                client.ip,
            ),
        ];
        self.store.batch(stmts).await?;
        self.session_for(user, &session_id, refresh, &amr).await
    }

    /// DELETE /factors/{id}: a verified factor only from an `aal2` session.
    pub async fn unenroll(&self, caller: &Caller, factor_id: &str) -> AuthResult<Value> {
        let factor = self.own_factor(&caller.user_id, factor_id).await?;
        if factor.str("status").as_deref() == Some("verified") && caller.aal != "aal2" {
            return Err(AuthError::new(422, "insufficient_aal", "AAL2 required to unenroll verified factor"));
        }
        self.remove_factor(&caller.user_id, &factor).await?;
        Ok(json!({"id": factor.str("id")}))
    }

    /// Deletes a factor; with a verified one gone, the user's `aal2` sessions drop to `aal1`
    /// (their next refresh says so), unless another verified factor remains.
    async fn remove_factor(&self, user_id: &str, factor: &Row) -> AuthResult<()> {
        let fid = factor.str("id").unwrap_or_default();
        let mut stmts = vec![q::delete_factor(user_id, &fid)];
        let others_verified =
            self.factors(user_id).await?.iter().any(|f| f.str("id") != Some(fid.clone()) && f.str("status").as_deref() == Some("verified"));
        if factor.str("status").as_deref() == Some("verified") && !others_verified {
            let raised = self.store.batch(vec![q::raised_sessions(user_id)]).await?.pop().unwrap_or_default();
            for s in raised {
                let amr: Vec<Value> = s
                    .json("amr")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m.get("method").and_then(Value::as_str) != Some("totp"))
                    .cloned()
                    .collect();
                stmts.push(q::lower_session(&s.str("id").unwrap_or_default(), Value::Array(amr)));
            }
        }
        self.store.batch(stmts).await?;
        Ok(())
    }

    /// GET /admin/users/{id}/factors
    pub async fn admin_factors(&self, user_id: &str) -> AuthResult<Value> {
        if uuid::Uuid::parse_str(user_id).is_err() {
            return Err(AuthError::new(404, "user_not_found", "User not found"));
        }
        Ok(Value::Array(self.factors(user_id).await?.iter().map(factor_json).collect()))
    }

    /// DELETE /admin/users/{id}/factors/{factor_id}
    pub async fn admin_delete_factor(&self, user_id: &str, factor_id: &str) -> AuthResult<Value> {
        if uuid::Uuid::parse_str(user_id).is_err() {
            return Err(AuthError::new(404, "user_not_found", "User not found"));
        }
        let factor = self.own_factor(user_id, factor_id).await?;
        self.remove_factor(user_id, &factor).await?;
        Ok(factor_json(&factor))
    }
}

/// The QR code of an `otpauth://` URI as GoTrue sends it: SVG text (supabase-js makes it a
/// data URL).
fn qr_svg(uri: &str) -> AuthResult<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(AuthError::internal)?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build())
}

/// `example.com:3000` from `https://example.com:3000/path`, as GoTrue names the issuer.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890", T = 59 s, 8 digits 94287082.
        let t = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_step_duration(30)
            .with_skew(0)
            .with_secret(b"12345678901234567890".to_vec())
            .build_noncompliant();
        assert_eq!(t.generate(59).to_string(), "94287082");
        let six = totp(b"12345678901234567890".to_vec());
        assert!(six.check("287082", 59).is_some());
        assert!(six.check("287082", 59 + 30).is_some(), "one step of skew");
        assert!(six.check("287082", 59 + 61).is_none());
    }

    #[test]
    fn hosts_and_levels() {
        assert_eq!(url_host("https://app.example.com:3000/x").as_deref(), Some("app.example.com:3000"));
        assert_eq!(url_host("http://localhost").as_deref(), Some("localhost"));
        assert_eq!(aal_of(&json!([{"method": "password"}])), "aal1");
        assert_eq!(aal_of(&json!([{"method": "totp"}, {"method": "password"}])), "aal2");
    }
}
