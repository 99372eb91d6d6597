//! The GoTrue flows: sign-up, password and refresh-token grants, one-time links and codes,
//! user updates, logout and the admin operations. HTTP-free; handlers call these.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::error::{AuthError, AuthResult};
use super::jwt::Claims;
use super::mailer::{Mail, Mailer};
use super::ratelimit::Limits;
use super::settings::AuthSettings;
use super::{password, tokens, JwtKeys};
use crate::store::auth_sql::{self as q, NewUser};
use crate::store::portable::{Row, RowExt, Stmt};
use crate::store::Store;

/// What signing in produces (GoTrue's Session).
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub user: Value,
}

impl Session {
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "user": self.user,
        })
    }
}

/// A row a signup hook inserts: table, columns, and the user field each column takes.
#[derive(Debug, Clone)]
pub struct SignupHook {
    pub table: String,
    pub columns: Vec<(String, String)>,
}

/// The caller of a user-scoped endpoint, from a verified access token.
pub struct Caller {
    pub user_id: String,
    pub session_id: Option<String>,
    /// The token's `aal` claim: `aal2` after a second factor.
    pub aal: String,
}

/// Where a request came from, for sessions and rate limits.
pub struct Client<'a> {
    pub ip: &'a str,
    pub user_agent: Option<&'a str>,
}

pub struct AuthService {
    pub store: Store,
    pub jwt: Arc<JwtKeys>,
    pub settings: AuthSettings,
    pub mailer: Mailer,
    pub limits: Limits,
    /// `http://host:port` used in e-mail links.
    pub base_url: String,
    /// The live catalog, for signup hooks.
    pub catalog: std::sync::Arc<crate::catalog::SharedCatalog>,
}

/// The name GoTrue's auth events give a user: the e-mail, else the phone.
fn username(user: &Row) -> String {
    user.str("email").filter(|e| !e.is_empty()).or_else(|| user.str("phone")).unwrap_or_default()
}

/// The provider a user signed up with (`app_metadata.provider`), for auth events.
fn provider(user: &Row) -> String {
    user.json("raw_app_meta_data").get("provider").and_then(Value::as_str).unwrap_or("email").to_string()
}

pub(super) fn now_ts() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A plausible address of at most 255 characters (GoTrue's `auth.users.email` is varchar(255)).
fn is_email(s: &str) -> bool {
    let s = s.trim();
    if s.chars().count() > 255 {
        return false;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !s.contains(' ')
        }
        None => false,
    }
}

/// Go-style durations as GoTrue takes for `ban_duration`: `24h`, `1h30m`, `90s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    let mut seen = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return None,
            }
        };
        total += num.parse::<f64>().ok()? * unit;
        num.clear();
        seen = true;
    }
    // Past a million years a duration is no duration (and would overflow a timestamp).
    (seen && num.is_empty() && total.is_finite() && total < 3.2e13).then(|| chrono::Duration::milliseconds((total * 1000.0) as i64))
}

impl AuthService {
    pub(super) async fn one(&self, stmt: Stmt) -> AuthResult<Option<Row>> {
        Ok(self.store.batch(vec![stmt]).await?.pop().and_then(|mut rows| if rows.is_empty() { None } else { Some(rows.remove(0)) }))
    }

    /// GoTrue's User object.
    pub async fn user_json(&self, row: &Row) -> AuthResult<Value> {
        let id = row.str("id").unwrap_or_default();
        let mut found = self.store.batch(vec![q::identities_of(&id), crate::store::mfa_sql::factors_of(&id)]).await?.into_iter();
        let (identities, factors) = (found.next().unwrap_or_default(), found.next().unwrap_or_default());
        let identities: Vec<Value> = identities
            .iter()
            .map(|i| {
                json!({
                    "identity_id": i.str("id"),
                    "id": i.str("provider_id"),
                    "user_id": i.str("user_id"),
                    "identity_data": i.json("identity_data"),
                    "provider": i.str("provider"),
                    "last_sign_in_at": i.str("last_sign_in_at"),
                    "created_at": i.str("created_at"),
                    "updated_at": i.str("updated_at"),
                    "email": i.str("email"),
                })
            })
            .collect();
        let mut u = json!({
            "id": id,
            "aud": row.str("aud").unwrap_or_else(|| "authenticated".into()),
            "role": row.str("role").unwrap_or_else(|| "authenticated".into()),
            "email": row.str("email").unwrap_or_default(),
            "phone": row.str("phone").unwrap_or_default(),
            "app_metadata": obj(row.json("raw_app_meta_data")),
            "user_metadata": obj(row.json("raw_user_meta_data")),
            "identities": identities,
            "created_at": row.str("created_at"),
            "updated_at": row.str("updated_at"),
            "is_anonymous": row.flag("is_anonymous"),
        });
        for (key, col) in [
            ("email_confirmed_at", "email_confirmed_at"),
            ("confirmed_at", "email_confirmed_at"),
            ("confirmation_sent_at", "confirmation_sent_at"),
            ("recovery_sent_at", "recovery_sent_at"),
            ("invited_at", "invited_at"),
            ("new_email", "email_change"),
            ("email_change_sent_at", "email_change_sent_at"),
            ("last_sign_in_at", "last_sign_in_at"),
            ("banned_until", "banned_until"),
        ] {
            if let Some(v) = row.str(col) {
                u[key] = json!(v);
            }
        }
        // GoTrue lists factors only when there are some.
        if !factors.is_empty() {
            u["factors"] = factors.iter().map(super::mfa::factor_json).collect();
        }
        Ok(u)
    }

    fn access_token(&self, user: &Row, session_id: &str, amr: &Value) -> (String, i64) {
        let iat = now_ts();
        let exp = iat + self.settings.jwt_exp;
        let mut extra = Map::new();
        extra.insert("aud".into(), json!(self.jwt.issued_audience()));
        extra.insert("email".into(), json!(user.str("email").unwrap_or_default()));
        extra.insert("phone".into(), json!(user.str("phone").unwrap_or_default()));
        extra.insert("app_metadata".into(), obj(user.json("raw_app_meta_data")));
        extra.insert("user_metadata".into(), obj(user.json("raw_user_meta_data")));
        extra.insert("aal".into(), json!(super::mfa::aal_of(amr)));
        extra.insert("amr".into(), amr.clone());
        extra.insert("session_id".into(), json!(session_id));
        extra.insert("is_anonymous".into(), json!(user.flag("is_anonymous")));
        let claims = Claims {
            role: "authenticated".into(),
            sub: user.str("id"),
            iss: Some(format!("{}/auth/v1", self.base_url)),
            iat: Some(iat),
            exp: Some(exp),
            extra,
        };
        (self.jwt.sign(&claims), exp)
    }

    /// Opens a session: a session row, a refresh token, and an access token for it.
    pub(super) async fn start_session(&self, user: &Row, method: &str, client: &Client<'_>) -> AuthResult<Session> {
        let user_id = user.str("id").unwrap_or_default();
        let session_id = uuid::Uuid::new_v4().to_string();
        let refresh = tokens::random(40);
        let amr = json!([{ "method": method, "timestamp": now_ts() }]);
        self.store
            .batch(vec![
                q::insert_session(&session_id, &user_id, amr.clone(), client.user_agent, Some(client.ip)),
                q::insert_refresh_token(&tokens::sha256_hex(&refresh), &user_id, &session_id, None),
                q::touch_user_now(&user_id, "last_sign_in_at"),
                q::auth_event("login", "account", &user_id, &username(user), Some(json!({"provider": provider(user)})), client.ip),
            ])
            .await?;
        let fresh = self.one(q::user_by_id(&user_id)).await?.ok_or_else(|| AuthError::internal("user vanished"))?;
        self.session_for(&fresh, &session_id, refresh, &amr).await
    }

    pub(super) async fn session_for(&self, user: &Row, session_id: &str, refresh: String, amr: &Value) -> AuthResult<Session> {
        let (access_token, expires_at) = self.access_token(user, session_id, amr);
        Ok(Session {
            access_token,
            refresh_token: refresh,
            expires_in: self.settings.jwt_exp,
            expires_at,
            user: self.user_json(user).await?,
        })
    }

    fn check_password_strength(&self, password: &str) -> AuthResult<()> {
        if password.chars().count() < self.settings.min_password_length {
            return Err(AuthError::weak_password(self.settings.min_password_length));
        }
        Ok(())
    }

    pub async fn rate_limit(&self, endpoint: &str, client: &Client<'_>, email: Option<&str>) -> AuthResult<()> {
        let hits = self.limits.hits(endpoint, client.ip, email);
        let counted = hits.iter().filter(|h| h.sql.starts_with("INSERT")).count();
        let results = self.store.batch(hits).await?;
        if results.iter().take(counted).all(|rows| !rows.is_empty()) {
            Ok(())
        } else {
            let code = if matches!(endpoint, "recover" | "otp" | "signup" | "resend" | "reauthenticate") {
                "over_email_send_rate_limit"
            } else {
                "over_request_rate_limit"
            };
            Err(AuthError::new(429, code, "Request rate limit reached"))
        }
    }

    /// Creates a user row (and identity, and hook rows) in one transaction.
    async fn create_user(&self, nu: NewUser<'_>) -> AuthResult<Row> {
        self.create_user_with(nu, None).await
    }

    /// [`create_user`](Self::create_user) with the identity it gets: an OAuth provider's
    /// `(provider, provider_id, identity_data)`, else the `email` identity when there is an address.
    pub(super) async fn create_user_with(&self, nu: NewUser<'_>, identity: Option<(&str, &str, Value)>) -> AuthResult<Row> {
        let provider = match &identity {
            Some((p, _, _)) => *p,
            None if nu.is_anonymous => "anonymous",
            None => "email",
        };
        let mut stmts = vec![
            q::insert_user(&nu),
            q::auth_event("user_signedup", "team", nu.id, nu.email.unwrap_or_default(), Some(json!({"provider": provider})), nu.ip),
        ];
        match (identity, nu.email) {
            (Some((provider, provider_id, data)), email) => {
                stmts.push(q::insert_identity(&uuid::Uuid::new_v4().to_string(), nu.id, provider, provider_id, email, data));
            }
            (None, Some(email)) => {
                let data = json!({"sub": nu.id, "email": email, "email_verified": nu.confirmed, "phone_verified": false});
                stmts.push(q::insert_identity(&uuid::Uuid::new_v4().to_string(), nu.id, "email", nu.id, Some(email), data));
            }
            (None, None) => {}
        }
        let user_view = json!({
            "id": nu.id, "email": nu.email, "user_metadata": nu.user_metadata, "app_metadata": nu.app_metadata,
        });
        for hook in &self.catalog.signup_hooks() {
            let cols: Vec<String> = hook.columns.iter().map(|(c, _)| c.clone()).collect();
            let values = hook.columns.iter().map(|(_, src)| lookup_path(&user_view, src)).collect();
            stmts.push(q::insert_row(&hook.table, &cols, values));
        }
        self.store.batch(stmts).await?;
        self.one(q::user_by_id(nu.id)).await?.ok_or_else(|| AuthError::internal("user not found after insert"))
    }

    /// An unconfirmed e-mail user, `data` from the request body as user_metadata.
    async fn create_email_user(&self, email: &str, password_hash: Option<&str>, body: &Value, invited: bool, ip: &str) -> AuthResult<Row> {
        let id = uuid::Uuid::new_v4().to_string();
        let data = obj(body.get("data").cloned().unwrap_or(Value::Null));
        self.create_user(NewUser {
            id: &id,
            email: Some(email),
            password_hash,
            confirmed: false,
            app_metadata: Self::app_metadata("email"),
            user_metadata: data,
            is_anonymous: false,
            invited,
            ip,
        })
        .await
    }

    pub(super) fn app_metadata(provider: &str) -> Value {
        json!({"provider": provider, "providers": [provider]})
    }

    /// POST /signup: a new e-mail user, or an anonymous user when no credentials are given.
    pub async fn signup(&self, body: &Value, client: &Client<'_>, redirect_to: Option<&str>) -> AuthResult<Value> {
        let email = body.get("email").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let password = body.get("password").and_then(Value::as_str);
        let data = obj(body.get("data").cloned().unwrap_or(Value::Null));
        let pkce = Pkce::from_body(body)?;
        self.rate_limit("signup", client, email).await?;
        if self.settings.disable_signup {
            return Err(AuthError::new(422, "signup_disabled", "Signups not allowed for this instance"));
        }
        let Some(email) = email else {
            if password.is_some() || body.get("phone").is_some() {
                return Err(AuthError::validation("Signup requires a valid email"));
            }
            if !self.settings.anonymous_enabled {
                return Err(AuthError::new(422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled"));
            }
            let id = uuid::Uuid::new_v4().to_string();
            let user = self
                .create_user(NewUser {
                    id: &id,
                    email: None,
                    password_hash: None,
                    confirmed: false,
                    app_metadata: json!({}),
                    user_metadata: data,
                    is_anonymous: true,
                    invited: false,
                    ip: client.ip,
                })
                .await?;
            return Ok(self.start_session(&user, "anonymous", client).await?.to_json());
        };
        if !is_email(email) {
            return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{email}\" is invalid")));
        }
        let password = password.ok_or_else(|| AuthError::validation("Signup requires a valid password"))?;
        self.check_password_strength(password)?;
        if let Some(existing) = self.one(q::user_by_email(email)).await? {
            if self.settings.autoconfirm || existing.str("email_confirmed_at").is_some() {
                return Err(AuthError::new(422, "user_already_exists", "User already registered"));
            }
            self.send_link(&existing, "signup", "confirmation", redirect_to, client, pkce.as_ref()).await?;
            return self.user_json(&existing).await;
        }
        let hash = hash_blocking(password.to_string()).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let user = self
            .create_user(NewUser {
                id: &id,
                email: Some(email),
                password_hash: Some(&hash),
                confirmed: self.settings.autoconfirm,
                app_metadata: Self::app_metadata("email"),
                user_metadata: data,
                is_anonymous: false,
                invited: false,
                ip: client.ip,
            })
            .await?;
        if !self.settings.autoconfirm {
            self.send_link(&user, "signup", "confirmation", redirect_to, client, pkce.as_ref()).await?;
            let fresh = self.one(q::user_by_id(&id)).await?.unwrap_or(user);
            return self.user_json(&fresh).await;
        }
        if self.settings.require_approval {
            return self.user_json(&user).await;
        }
        Ok(self.start_session(&user, "password", client).await?.to_json())
    }

    /// Refuses users who are banned, unconfirmed, or awaiting approval.
    pub(super) fn check_can_sign_in(&self, user: &Row) -> AuthResult<()> {
        if let Some(until) = user.str("banned_until") {
            if until.as_str() > basalt_query::value::format_timestamptz(&chrono::Utc::now()).as_str() {
                return Err(AuthError::new(400, "user_banned", "User is banned"));
            }
        }
        let anonymous_without_email = user.flag("is_anonymous") && user.str("email").is_none_or(|e| e.is_empty());
        if self.settings.require_approval && !anonymous_without_email {
            let approved = obj(user.json("raw_app_meta_data")).get("approved").and_then(Value::as_bool) == Some(true);
            if !approved {
                return Err(AuthError::new(403, "user_not_approved", "User is awaiting approval by an administrator"));
            }
        }
        Ok(())
    }

    /// POST /token?grant_type=password
    pub async fn password_grant(&self, body: &Value, client: &Client<'_>) -> AuthResult<Session> {
        let email = body.get("email").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        let password = body.get("password").and_then(Value::as_str).unwrap_or_default();
        self.rate_limit("token", client, Some(email)).await?;
        if email.is_empty() || password.is_empty() {
            return Err(AuthError::invalid_credentials());
        }
        let user = self.one(q::user_by_email(email)).await?;
        let stored = user.as_ref().and_then(|u| u.str("encrypted_password")).unwrap_or_default();
        let ok = verify_blocking(password.to_string(), stored.clone()).await;
        let Some(user) = user.filter(|_| ok) else { return Err(AuthError::invalid_credentials()) };
        if user.str("email_confirmed_at").is_none() {
            return Err(AuthError::new(400, "email_not_confirmed", "Email not confirmed"));
        }
        self.check_can_sign_in(&user)?;
        if password::needs_upgrade(&stored) {
            let h = hash_blocking(password.to_string()).await?;
            self.store.batch(vec![q::set_user_field(&user.str("id").unwrap_or_default(), "encrypted_password", json!(h))]).await?;
        }
        self.start_session(&user, "password", client).await
    }

    /// POST /token?grant_type=refresh_token: rotate, and detect reuse of an old token.
    pub async fn refresh_grant(&self, body: &Value, client: &Client<'_>) -> AuthResult<Session> {
        let Some(token) = body.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            let mut e = AuthError::new(400, "validation_failed", "refresh_token required");
            e.oauth_error = Some("invalid_request");
            return Err(e);
        };
        self.rate_limit("refresh", client, None).await?;
        let hash = tokens::sha256_hex(token);
        let not_found = || AuthError::new(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
        let row = self.one(q::refresh_token(&hash)).await?.ok_or_else(not_found)?;
        let session_id = row.str("session_id").unwrap_or_default();
        let session = self
            .one(q::session(&session_id))
            .await?
            .ok_or_else(|| AuthError::new(400, "session_not_found", "Session from session_id claim in JWT does not exist"))?;
        let user_id = row.str("user_id").unwrap_or_default();
        let user = self.one(q::user_by_id(&user_id)).await?.ok_or_else(not_found)?;
        self.check_can_sign_in(&user)?;
        // The token to rotate from: this one if still valid; the session's active one when this
        // is its parent (the client lost the response) or was rotated moments ago.
        let from = if !row.flag("revoked") {
            row.clone()
        } else {
            let active = self.one(q::active_refresh_token(&session_id)).await?;
            let recent = row.str("updated_at").and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).is_some_and(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() < self.settings.refresh_reuse_interval * 1000
            });
            match active {
                Some(a) if a.str("parent").as_deref() == Some(hash.as_str()) || recent => a,
                _ => {
                    self.store.batch(vec![q::delete_session(&session_id)]).await?;
                    return Err(AuthError::new(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"));
                }
            }
        };
        let next = tokens::random(40);
        let from_hash = from.str("token").unwrap_or_default();
        let rows = self
            .store
            .batch(vec![
                q::revoke_refresh_token(from.int("id").unwrap_or_default()),
                q::insert_refresh_token(&tokens::sha256_hex(&next), &user_id, &session_id, Some(&from_hash)),
                q::touch_session(&session_id),
                q::auth_event("token_refreshed", "token", &user_id, &username(&user), None, client.ip),
            ])
            .await?;
        if rows.first().is_none_or(Vec::is_empty) {
            tracing::debug!("refresh token rotated concurrently");
        }
        let amr = session.json("amr");
        self.session_for(&user, &session_id, next, &amr).await
    }

    /// Verifies an access token for the user endpoints: the session and user must still exist.
    pub async fn caller(&self, token: Option<&str>) -> AuthResult<(Caller, Row)> {
        let token = token.ok_or_else(|| AuthError::new(401, "no_authorization", "This endpoint requires a Bearer token"))?;
        let (_, claims) = self
            .jwt
            .verify(token)
            .map_err(|e| AuthError::new(403, "bad_jwt", format!("invalid JWT: unable to parse or verify signature, {e}")))?;
        let user_id = claims.sub.clone().ok_or_else(|| AuthError::new(403, "bad_jwt", "invalid claim: missing sub claim"))?;
        if uuid::Uuid::parse_str(&user_id).is_err() {
            return Err(AuthError::new(403, "bad_jwt", "invalid claim: sub claim must be a UUID"));
        }
        let session_id = claims.extra.get("session_id").and_then(Value::as_str).map(str::to_string);
        if session_id.as_deref().is_some_and(|s| uuid::Uuid::parse_str(s).is_err()) {
            return Err(AuthError::new(403, "bad_jwt", "invalid claim: session_id claim must be a UUID"));
        }
        if let Some(sid) = &session_id {
            if self.one(q::session(sid)).await?.is_none() {
                return Err(AuthError::new(403, "session_not_found", "Session from session_id claim in JWT does not exist"));
            }
        }
        let user = self
            .one(q::user_by_id(&user_id))
            .await?
            .ok_or_else(|| AuthError::new(403, "user_not_found", "User from sub claim in JWT does not exist"))?;
        let aal = claims.extra.get("aal").and_then(Value::as_str).unwrap_or("aal1").to_string();
        Ok((Caller { user_id, session_id, aal }, user))
    }

    /// PUT /user: e-mail, password and metadata (merged key by key, as GoTrue does).
    pub async fn update_user(
        &self,
        caller: &Caller,
        user: &Row,
        body: &Value,
        redirect_to: Option<&str>,
        client: &Client<'_>,
    ) -> AuthResult<Value> {
        let id = &caller.user_id;
        let pkce = Pkce::from_body(body)?;
        // As GoTrue's per-user limit on PUT /user; it also bounds guessing a reauthentication code.
        self.rate_limit("user", client, user.str("email").as_deref()).await?;
        let mut stmts = Vec::new();
        if let Some(data) = body.get("data").and_then(Value::as_object) {
            let mut meta = obj(user.json("raw_user_meta_data"));
            for (k, v) in data {
                meta[k] = v.clone();
            }
            stmts.push(q::set_user_field(id, "raw_user_meta_data", meta));
        }
        if body.get("app_metadata").is_some() {
            return Err(AuthError::new(403, "not_admin", "Updating app_metadata requires the service_role key"));
        }
        if let Some(pw) = body.get("password").and_then(Value::as_str) {
            self.check_password_strength(pw)?;
            if self.settings.secure_password_change && !self.session_is_recent(caller).await? {
                stmts.push(self.spend_nonce(user, body.get("nonce").and_then(Value::as_str)).await?);
            }
            stmts.push(q::set_user_field(id, "encrypted_password", json!(hash_blocking(pw.to_string()).await?)));
        }
        let mut send_change = false;
        if let Some(email) = body.get("email").and_then(Value::as_str).map(str::trim).filter(|e| Some(*e) != user.str("email").as_deref()) {
            if !is_email(email) {
                return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{email}\" is invalid")));
            }
            if self.one(q::user_by_email(email)).await?.is_some() {
                return Err(AuthError::new(422, "email_exists", "A user with this email address has already been registered"));
            }
            if self.settings.autoconfirm {
                stmts.push(q::set_user_field(id, "email", json!(email)));
            } else {
                stmts.push(q::set_user_field(id, "email_change", json!(email)));
                send_change = true;
            }
        }
        // An anonymous user who adds an e-mail or password becomes a permanent user.
        if user.flag("is_anonymous") && (body.get("email").is_some() || body.get("password").is_some()) {
            stmts.push(q::set_user_field(id, "is_anonymous", json!(false)));
        }
        if !stmts.is_empty() {
            let action = if body.get("password").is_some() { "user_updated_password" } else { "user_modified" };
            stmts.push(q::auth_event(action, "user", id, &username(user), None, client.ip));
            self.store.batch(stmts).await?;
        }
        let fresh = self.one(q::user_by_id(id)).await?.ok_or_else(|| AuthError::new(404, "user_not_found", "User not found"))?;
        if send_change {
            self.send_link(&fresh, "email_change", "email_change", redirect_to, client, pkce.as_ref()).await?;
        }
        self.user_json(&fresh).await
    }

    /// Whether the caller's session was opened in the last 24 hours: GoTrue lets such a session
    /// change the password without reauthenticating. A token without a session is not recent.
    async fn session_is_recent(&self, caller: &Caller) -> AuthResult<bool> {
        let Some(id) = &caller.session_id else { return Ok(false) };
        let Some(session) = self.one(q::session(id)).await? else { return Ok(false) };
        let day_ago = basalt_query::value::format_timestamptz(&(chrono::Utc::now() - chrono::Duration::hours(24)));
        Ok(session.str("created_at").is_some_and(|at| at > day_ago))
    }

    /// Checks the code `POST /reauthenticate` mailed and returns the statement that uses it up.
    async fn spend_nonce(&self, user: &Row, nonce: Option<&str>) -> AuthResult<Stmt> {
        let nonce = nonce.map(str::trim).filter(|n| !n.is_empty());
        let nonce = nonce.ok_or_else(|| AuthError::new(400, "reauthentication_needed", "Password update requires reauthentication"))?;
        let invalid = || AuthError::new(400, "reauthentication_not_valid", "Verification code has expired or is invalid");
        let user_id = user.str("id").unwrap_or_default();
        let email = user.str("email").unwrap_or_default().to_lowercase();
        let row = self.one(q::one_time_token(&tokens::sha256_hex(&format!("{email}:{nonce}")))).await?.ok_or_else(invalid)?;
        let now = basalt_query::value::format_timestamptz(&chrono::Utc::now());
        let fits = row.str("token_type").as_deref() == Some("reauthentication")
            && row.str("user_id").as_deref() == Some(user_id.as_str())
            && row.str("expires_at").is_some_and(|at| at > now);
        if !fits {
            return Err(invalid());
        }
        Ok(q::delete_one_time_tokens(&user_id, "reauthentication"))
    }

    /// POST /reauthenticate: a six-digit code to the caller's confirmed address, the `nonce` a
    /// password change needs under `secure_password_change`.
    pub async fn reauthenticate(&self, user: &Row, client: &Client<'_>) -> AuthResult<()> {
        let Some(email) = user.str("email").filter(|e| !e.is_empty()) else {
            return Err(AuthError::new(422, "validation_failed", "Reauthentication requires the user to have an email or a phone number"));
        };
        if user.str("email_confirmed_at").is_none() {
            return Err(AuthError::new(400, "email_not_confirmed", "Please verify your email first."));
        }
        self.rate_limit("reauthenticate", client, Some(&email)).await?;
        let user_id = user.str("id").unwrap_or_default();
        let last = self.one(q::one_time_token_created(&user_id, "reauthentication")).await?;
        self.check_mail_frequency(last.and_then(|r| r.str("created_at")).as_deref())?;
        let code = tokens::otp();
        let expires = basalt_query::value::format_timestamptz(&(chrono::Utc::now() + chrono::Duration::seconds(self.settings.otp_exp)));
        self.store
            .batch(vec![
                q::delete_one_time_tokens(&user_id, "reauthentication"),
                q::insert_one_time_token(
                    &uuid::Uuid::new_v4().to_string(),
                    &user_id,
                    "reauthentication",
                    &tokens::sha256_hex(&format!("{}:{code}", email.to_lowercase())),
                    &email,
                    &expires,
                ),
                q::auth_event("user_reauthenticate_requested", "user", &user_id, &email, None, client.ip),
            ])
            .await?;
        self.mailer.send(&Mail {
            to: email,
            kind: "reauthentication",
            subject: "Confirm reauthentication".into(),
            link: String::new(),
            otp: code,
        });
        Ok(())
    }

    /// POST /logout: scope local (this session), global (all), others (all but this).
    pub async fn logout(&self, caller: &Caller, scope: &str, client: &Client<'_>) -> AuthResult<()> {
        let stmt = match (scope, &caller.session_id) {
            ("local", Some(sid)) => q::delete_session(sid),
            ("others", Some(sid)) => q::delete_sessions_of(&caller.user_id, Some(sid)),
            ("global" | "" | "local" | "others", _) => q::delete_sessions_of(&caller.user_id, None),
            _ => return Err(AuthError::validation("scope must be global, local or others")),
        };
        let event = q::auth_event("logout", "account", &caller.user_id, "", None, client.ip);
        self.store.batch(vec![stmt, event]).await?;
        Ok(())
    }

    /// GoTrue's per-user mail interval: a mail of a kind already sent to this user within
    /// `mail_max_frequency` seconds (`last`, when it was) is refused with 429.
    fn check_mail_frequency(&self, last: Option<&str>) -> AuthResult<()> {
        let wait = chrono::Duration::seconds(self.settings.mail_max_frequency);
        let Some(last) = last.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else { return Ok(()) };
        let left = last.with_timezone(&chrono::Utc) + wait - chrono::Utc::now();
        if left <= chrono::Duration::zero() {
            return Ok(());
        }
        let seconds = (left.num_milliseconds() + 999) / 1000;
        Err(AuthError::new(
            429,
            "over_email_send_rate_limit",
            format!("For security purposes, you can only request this after {seconds} seconds."),
        ))
    }

    /// Creates a one-time link and code for `user` and returns (link token, code, action link).
    async fn issue_link(
        &self,
        user: &Row,
        kind: &'static str,
        relates_to: &str,
        redirect_to: Option<&str>,
        requester: LinkRequester<'_>,
        pkce: Option<&Pkce>,
    ) -> AuthResult<(String, String, String)> {
        let user_id = user.str("id").unwrap_or_default();
        // A PKCE link's token says so, as GoTrue's: following it yields an auth code, not tokens.
        let link_token = match pkce {
            Some(_) => format!("pkce_{}", tokens::random(40)),
            None => tokens::random(40),
        };
        let code = tokens::otp();
        let expires = basalt_query::value::format_timestamptz(&(chrono::Utc::now() + chrono::Duration::seconds(self.settings.otp_exp)));
        let sent_col = sent_column(kind);
        let mut stmts = vec![
            q::delete_one_time_tokens(&user_id, kind),
            q::insert_one_time_token(
                &uuid::Uuid::new_v4().to_string(),
                &user_id,
                kind,
                &tokens::sha256_hex(&link_token),
                relates_to,
                &expires,
            ),
            q::insert_one_time_token(
                &uuid::Uuid::new_v4().to_string(),
                &user_id,
                kind,
                &tokens::sha256_hex(&format!("{}:{code}", relates_to.to_lowercase())),
                relates_to,
                &expires,
            ),
            q::touch_user_now(&user_id, sent_col),
        ];
        stmts.extend(link_event(kind, user, requester));
        if let Some(p) = pkce {
            let method = flow_method(kind);
            stmts.push(q::delete_flow_states(&user_id, method));
            let (id, auth_code) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
            stmts.push(q::insert_flow_state(&id, &user_id, &auth_code, p.method, &p.challenge, method));
        }
        self.store.batch(stmts).await?;
        let redirect = self.settings.redirect(redirect_to);
        let link =
            format!("{}/auth/v1/verify?token={link_token}&type={}&redirect_to={}", self.base_url, link_type(kind), urlencode(&redirect));
        Ok((link_token, code, link))
    }

    pub(super) async fn send_link(
        &self,
        user: &Row,
        mail_kind: &'static str,
        kind: &'static str,
        redirect_to: Option<&str>,
        client: &Client<'_>,
        pkce: Option<&Pkce>,
    ) -> AuthResult<()> {
        let to = if kind == "email_change" { user.str("email_change") } else { user.str("email") }.unwrap_or_default();
        self.check_mail_frequency(user.str(sent_column(kind)).as_deref())?;
        let (_, otp, link) = self.issue_link(user, kind, &to, redirect_to, LinkRequester::User { ip: client.ip }, pkce).await?;
        let subject = match mail_kind {
            "signup" => "Confirm your signup",
            "recovery" => "Reset your password",
            "magiclink" => "Your magic link",
            "invite" => "You have been invited",
            _ => "Confirm your new e-mail address",
        };
        self.mailer.send(&Mail { to, kind: mail_kind, subject: subject.into(), link, otp });
        Ok(())
    }

    /// POST /recover: always `{}`, whether or not the address is known.
    pub async fn recover(&self, body: &Value, client: &Client<'_>, redirect_to: Option<&str>) -> AuthResult<()> {
        let email = body.get("email").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        let pkce = Pkce::from_body(body)?;
        self.rate_limit("recover", client, Some(email)).await?;
        if !is_email(email) {
            return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{email}\" is invalid")));
        }
        if let Some(user) = self.one(q::user_by_email(email)).await? {
            self.send_link(&user, "recovery", "recovery", redirect_to, client, pkce.as_ref()).await?;
        }
        Ok(())
    }

    /// POST /resend: the signup confirmation, or the e-mail change confirmation, once more.
    /// `{}` whether or not the address is known, and when there is nothing to confirm (the
    /// address confirmed, no change pending), as GoTrue, so it tells nobody who has an account.
    pub async fn resend(&self, body: &Value, client: &Client<'_>, redirect_to: Option<&str>) -> AuthResult<()> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let (kind, email, phone) = (text("type").unwrap_or_default(), text("email"), text("phone"));
        if !matches!(kind, "signup" | "email_change" | "sms" | "phone_change") {
            return Err(AuthError::validation("Missing one of these types: signup, email_change, sms, phone_change"));
        }
        match (email, phone) {
            (Some(_), Some(_)) => return Err(AuthError::validation("Only an email address or phone number should be provided.")),
            (None, Some(_)) if kind == "signup" => return Err(AuthError::validation("Type provided requires an email address")),
            (None, Some(_)) => return Err(AuthError::new(400, "phone_provider_disabled", "Phone logins are disabled")),
            (None, None) if kind == "sms" => return Err(AuthError::validation("Type provided requires a phone number")),
            (None, None) if kind == "signup" => return Err(AuthError::validation("Type provided requires an email address")),
            (None, None) => return Err(AuthError::validation("Missing email address or phone number")),
            (Some(_), None) if matches!(kind, "sms" | "phone_change") => {
                return Err(AuthError::new(400, "phone_provider_disabled", "Phone logins are disabled"))
            }
            (Some(e), None) if !is_email(e) => {
                return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{e}\" is invalid")))
            }
            (Some(_), None) => {}
        }
        self.rate_limit("resend", client, email).await?;
        let Some(user) = self.one(q::user_by_email(email.unwrap_or_default())).await? else { return Ok(()) };
        match kind {
            "signup" if user.str("email_confirmed_at").is_none() => {
                self.send_link(&user, "signup", "confirmation", redirect_to, client, None).await
            }
            "email_change" if user.str("email_change").is_some_and(|e| !e.is_empty()) => {
                self.send_link(&user, "email_change", "email_change", redirect_to, client, None).await
            }
            _ => Ok(()),
        }
    }

    /// POST /otp: a magic link and code by e-mail, creating the user unless `create_user` is false.
    pub async fn otp(&self, body: &Value, client: &Client<'_>, redirect_to: Option<&str>) -> AuthResult<()> {
        let email = body.get("email").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        let pkce = Pkce::from_body(body)?;
        self.rate_limit("otp", client, Some(email)).await?;
        if !is_email(email) {
            return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{email}\" is invalid")));
        }
        let user = match self.one(q::user_by_email(email)).await? {
            Some(u) => u,
            None if body.get("create_user").and_then(Value::as_bool) == Some(false) || self.settings.disable_signup => {
                return Err(AuthError::new(422, "otp_disabled", "Signups not allowed for otp"));
            }
            None => self.create_email_user(email, None, body, false, client.ip).await?,
        };
        self.send_link(&user, "magiclink", "magiclink", redirect_to, client, pkce.as_ref()).await
    }

    /// POST/GET /verify: a link token (`token_hash`, or `token` from an e-mail link) or an
    /// e-mail plus six-digit code. Confirms the address and opens a session.
    pub async fn verify(&self, kind: &str, email: Option<&str>, token: &str, client: &Client<'_>) -> AuthResult<(Session, &'static str)> {
        let (user, stored) = self.use_token(kind, email, token, client).await?;
        let session = self.start_session(&user, session_method(&stored), client).await?;
        Ok((session, link_type(&stored)))
    }

    /// GET /verify with a PKCE link (`pkce_` token): the token is used up as by [`Self::verify`],
    /// and the browser gets the flow's auth code to exchange (`grant_type=pkce`) instead of tokens.
    pub async fn verify_pkce(&self, kind: &str, token: &str, client: &Client<'_>) -> AuthResult<(String, &'static str)> {
        // The flow first: a link whose flow is gone is not used up for nothing.
        if let Some(t) = self.one(q::one_time_token(&tokens::sha256_hex(token))).await? {
            let (user_id, kind) = (t.str("user_id").unwrap_or_default(), t.str("token_type").unwrap_or_default());
            self.one(q::flow_state_for(&user_id, flow_method(&kind))).await?.ok_or_else(flow_not_found)?;
        }
        let (user, stored) = self.use_token(kind, None, token, client).await?;
        let user_id = user.str("id").unwrap_or_default();
        let flow = self.one(q::flow_state_for(&user_id, flow_method(&stored))).await?.ok_or_else(flow_not_found)?;
        self.store.batch(vec![q::issue_auth_code(&flow.str("id").unwrap_or_default())]).await?;
        Ok((flow.str("auth_code").unwrap_or_default(), link_type(&stored)))
    }

    /// POST /token?grant_type=pkce: the auth code a PKCE link gave, and the verifier whose
    /// challenge the client sent when it asked for the link. Each code serves once, for five
    /// minutes after the link was followed.
    pub async fn pkce_grant(&self, body: &Value, client: &Client<'_>) -> AuthResult<Session> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let (Some(code), Some(verifier)) = (text("auth_code"), text("code_verifier")) else {
            return Err(AuthError::validation("invalid request: both auth code and code verifier should be non-empty"));
        };
        self.rate_limit("token", client, None).await?;
        let flow = self.one(q::flow_state_by_code(code)).await?.ok_or_else(flow_not_found)?;
        let flow_id = flow.str("id").unwrap_or_default();
        let five_minutes_ago = basalt_query::value::format_timestamptz(&(chrono::Utc::now() - chrono::Duration::minutes(5)));
        if flow.str("auth_code_issued_at").is_none_or(|at| at <= five_minutes_ago) {
            return Err(AuthError::new(422, "flow_state_expired", "invalid flow state, flow state has expired"));
        }
        let challenge = flow.str("code_challenge").unwrap_or_default();
        let expected = match flow.str("code_challenge_method").as_deref() {
            Some("plain") => verifier.to_string(),
            _ => {
                use base64::Engine;
                use sha2::Digest;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
            }
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), challenge.as_bytes())) {
            return Err(AuthError::new(403, "bad_code_verifier", "code challenge does not match previously saved code verifier"));
        }
        // Taken by one exchange only: of two at once, one deletes the flow and the other finds it gone.
        let taken = self.store.batch(vec![q::delete_flow_state(&flow_id)]).await?;
        if taken.first().is_none_or(Vec::is_empty) {
            return Err(flow_not_found());
        }
        let user_id = flow.str("user_id").unwrap_or_default();
        let user = self.one(q::user_by_id(&user_id)).await?.ok_or_else(flow_not_found)?;
        self.check_can_sign_in(&user)?;
        let method = match flow.str("authentication_method").as_deref() {
            Some("recovery") => "recovery",
            Some("email_change") => "email_change",
            Some("invite") => "invite",
            Some("oauth") => "oauth",
            _ => "otp",
        };
        self.start_session(&user, method, client).await
    }

    /// Checks a link token or e-mail code and uses it up: the address confirmed, an invite
    /// accepted, an e-mail change applied. Returns the user and the kind of token it was.
    async fn use_token(&self, kind: &str, email: Option<&str>, token: &str, client: &Client<'_>) -> AuthResult<(Row, String)> {
        self.rate_limit("verify", client, email).await?;
        let hash = match email {
            Some(e) => tokens::sha256_hex(&format!("{}:{token}", e.trim().to_lowercase())),
            None => tokens::sha256_hex(token),
        };
        let expired = || AuthError::new(403, "otp_expired", "Token has expired or is invalid");
        let row = self.one(q::one_time_token(&hash)).await?.ok_or_else(expired)?;
        let stored = row.str("token_type").unwrap_or_default();
        let accepted: &[&str] = match kind {
            "signup" => &["confirmation"],
            "email" => &["confirmation", "magiclink"],
            "magiclink" => &["magiclink", "confirmation"],
            "recovery" => &["recovery"],
            "invite" => &["invite"],
            "email_change" => &["email_change"],
            _ => return Err(AuthError::validation(format!("Verify requires a verification type, not {kind}"))),
        };
        if !accepted.contains(&stored.as_str()) {
            return Err(expired());
        }
        if row.str("expires_at").unwrap_or_default() < basalt_query::value::format_timestamptz(&chrono::Utc::now()) {
            return Err(expired());
        }
        let user_id = row.str("user_id").unwrap_or_default();
        let mut stmts = vec![q::delete_one_time_tokens(&user_id, &stored), q::confirm_email(&user_id)];
        if stored == "invite" {
            let name = row.str("relates_to").unwrap_or_default();
            stmts.push(q::auth_event("invite_accepted", "account", &user_id, &name, None, client.ip));
        }
        if stored == "email_change" {
            stmts.push(q::set_user_field(&user_id, "email", json!(row.str("relates_to"))));
            stmts.push(q::set_user_field(&user_id, "email_change", Value::Null));
        }
        self.store.batch(stmts).await?;
        let user = self.one(q::user_by_id(&user_id)).await?.ok_or_else(expired)?;
        self.check_can_sign_in(&user)?;
        Ok((user, stored))
    }

    // ---- admin ----

    pub async fn admin_list(&self, page: i64, per_page: i64) -> AuthResult<(Vec<Value>, i64)> {
        let offset = page.saturating_sub(1).saturating_mul(per_page);
        let out = self.store.batch(vec![q::count_users(), q::list_users(per_page, offset)]).await?;
        let total = out.first().and_then(|r| r.first()).and_then(|r| r.int("n")).unwrap_or(0);
        let mut users = Vec::new();
        for row in out.get(1).cloned().unwrap_or_default() {
            users.push(self.user_json(&row).await?);
        }
        Ok((users, total))
    }

    pub async fn admin_get(&self, id: &str) -> AuthResult<Value> {
        let row = self.find(id).await?;
        self.user_json(&row).await
    }

    async fn find(&self, id: &str) -> AuthResult<Row> {
        let not_found = || AuthError::new(404, "user_not_found", "User not found");
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(not_found());
        }
        self.one(q::user_by_id(id)).await?.ok_or_else(not_found)
    }

    pub async fn admin_create(&self, body: &Value, ip: &str) -> AuthResult<Value> {
        let email = body.get("email").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        if let Some(e) = email {
            if !is_email(e) {
                return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{e}\" is invalid")));
            }
            if self.one(q::user_by_email(e)).await?.is_some() {
                return Err(AuthError::new(422, "email_exists", "A user with this email address has already been registered"));
            }
        }
        let hash = match (body.get("password_hash").and_then(Value::as_str), body.get("password").and_then(Value::as_str)) {
            (Some(h), _) if h.starts_with("$2") || h.starts_with("$argon2") => Some(h.to_string()),
            (Some(_), _) => return Err(AuthError::validation("password_hash must be a bcrypt or argon2 hash")),
            (None, Some(p)) => {
                self.check_password_strength(p)?;
                Some(hash_blocking(p.to_string()).await?)
            }
            (None, None) => None,
        };
        let id = match body.get("id").and_then(Value::as_str) {
            Some(i) => uuid::Uuid::parse_str(i).map_err(|_| AuthError::validation("id must be a UUID"))?.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        // A bad ban_duration is refused before the user exists.
        let ban = body.get("ban_duration").and_then(Value::as_str).map(|d| self.ban_stmt(&id, d)).transpose()?;
        let mut app = Self::app_metadata("email");
        if let Some(extra) = body.get("app_metadata").and_then(Value::as_object) {
            for (k, v) in extra {
                app[k] = v.clone();
            }
        }
        let user = self
            .create_user(NewUser {
                id: &id,
                email,
                password_hash: hash.as_deref(),
                confirmed: body.get("email_confirm").and_then(Value::as_bool) == Some(true),
                app_metadata: app,
                user_metadata: obj(body.get("user_metadata").cloned().unwrap_or(Value::Null)),
                is_anonymous: false,
                invited: false,
                ip,
            })
            .await?;
        if let Some(stmt) = ban {
            self.store.batch(vec![stmt]).await?;
            return self.admin_get(&id).await;
        }
        self.user_json(&user).await
    }

    fn ban_stmt(&self, id: &str, duration: &str) -> AuthResult<Stmt> {
        if duration == "none" {
            return Ok(q::set_user_field(id, "banned_until", Value::Null));
        }
        let d = parse_duration(duration).ok_or_else(|| AuthError::validation(format!("invalid format for ban duration: {duration}")))?;
        // Within four-digit years, which both backends store and print alike.
        let until = chrono::Utc::now()
            .checked_add_signed(d)
            .filter(|t| chrono::Datelike::year(t) <= 9999)
            .ok_or_else(|| AuthError::validation(format!("ban duration is too long: {duration}")))?;
        Ok(q::set_user_field(id, "banned_until", json!(basalt_query::value::format_timestamptz(&until))))
    }

    pub async fn admin_update(&self, id: &str, body: &Value, ip: &str) -> AuthResult<Value> {
        let user = self.find(id).await?;
        let mut stmts = Vec::new();
        if let Some(e) = body.get("email").and_then(Value::as_str) {
            if !is_email(e) {
                return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{e}\" is invalid")));
            }
            stmts.push(q::set_user_field(id, "email", json!(e.trim())));
        }
        if let Some(p) = body.get("password").and_then(Value::as_str) {
            self.check_password_strength(p)?;
            stmts.push(q::set_user_field(id, "encrypted_password", json!(hash_blocking(p.to_string()).await?)));
        }
        if body.get("email_confirm").and_then(Value::as_bool) == Some(true) {
            stmts.push(q::confirm_email(id));
        }
        for (key, col) in [("user_metadata", "raw_user_meta_data"), ("app_metadata", "raw_app_meta_data")] {
            if let Some(extra) = body.get(key).and_then(Value::as_object) {
                let mut merged = obj(user.json(col));
                for (k, v) in extra {
                    merged[k] = v.clone();
                }
                stmts.push(q::set_user_field(id, col, merged));
            }
        }
        if let Some(d) = body.get("ban_duration").and_then(Value::as_str) {
            stmts.push(self.ban_stmt(id, d)?);
        }
        if !stmts.is_empty() {
            let mut traits = user_traits(id, &user);
            if let Some(e) = body.get("email").and_then(Value::as_str) {
                traits["user_email"] = json!(e.trim());
            }
            stmts.push(q::auth_event("user_modified", "user", ADMIN_ACTOR, "service_role", Some(traits), ip));
            self.store.batch(stmts).await?;
        }
        self.admin_get(id).await
    }

    pub async fn admin_delete(&self, id: &str, ip: &str) -> AuthResult<()> {
        let user = self.find(id).await?;
        let event = q::auth_event("user_deleted", "team", ADMIN_ACTOR, "service_role", Some(user_traits(id, &user)), ip);
        self.store.batch(vec![q::delete_user(id), event]).await?;
        Ok(())
    }

    /// POST /admin/generate_link: the link without sending mail.
    pub async fn generate_link(&self, body: &Value, redirect_to: Option<&str>, ip: &str) -> AuthResult<Value> {
        let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
        let email = body.get("email").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        if !is_email(email) {
            return Err(AuthError::new(400, "email_address_invalid", format!("Email address \"{email}\" is invalid")));
        }
        let redirect = redirect_to
            .or_else(|| body.get("redirect_to").and_then(Value::as_str))
            .or_else(|| body.get("redirectTo").and_then(Value::as_str));
        let existing = self.one(q::user_by_email(email)).await?;
        let (user, token_kind) = match kind {
            "signup" => {
                let user = match existing {
                    Some(u) => u,
                    None => {
                        let pw = body
                            .get("password")
                            .and_then(Value::as_str)
                            .ok_or_else(|| AuthError::validation("Password is required for signup links"))?;
                        self.check_password_strength(pw)?;
                        let hash = hash_blocking(pw.to_string()).await?;
                        self.create_email_user(email, Some(&hash), body, false, ip).await?
                    }
                };
                (user, "confirmation")
            }
            "magiclink" | "recovery" => (
                existing.ok_or_else(|| AuthError::new(404, "user_not_found", "User with this email not found"))?,
                if kind == "recovery" { "recovery" } else { "magiclink" },
            ),
            "invite" => {
                let user = match existing {
                    Some(u) => u,
                    None => self.create_email_user(email, None, body, true, ip).await?,
                };
                (user, "invite")
            }
            _ => return Err(AuthError::validation("type must be signup, invite, magiclink or recovery")),
        };
        let (link_token, otp, link) = self.issue_link(&user, token_kind, email, redirect, LinkRequester::Admin { ip }, None).await?;
        let fresh = self.one(q::user_by_id(&user.str("id").unwrap_or_default())).await?.unwrap_or(user);
        let mut out = self.user_json(&fresh).await?;
        out["action_link"] = json!(link);
        out["email_otp"] = json!(otp);
        out["hashed_token"] = json!(link_token);
        out["verification_type"] = json!(link_type(token_kind));
        out["redirect_to"] = json!(self.settings.redirect(redirect));
        Ok(out)
    }
}

/// The actor id of events the service role causes, as GoTrue records an admin without a user.
const ADMIN_ACTOR: &str = "00000000-0000-0000-0000-000000000000";

/// Who an admin event is about, as GoTrue's `traits`.
fn user_traits(id: &str, user: &Row) -> Value {
    json!({"user_id": id, "user_email": user.str("email").unwrap_or_default(), "user_phone": user.str("phone").unwrap_or_default()})
}

/// Who asked for a one-time link: the user (recover, magic link, sign-up confirmation, e-mail
/// change) or the service role (invite, generate_link).
#[derive(Clone, Copy)]
enum LinkRequester<'a> {
    User { ip: &'a str },
    Admin { ip: &'a str },
}

/// The auth event a one-time link leaves, with GoTrue's action names. E-mail change links
/// leave none of their own: the update that asked for them is logged as `user_modified`.
fn link_event(kind: &str, user: &Row, requester: LinkRequester<'_>) -> Option<Stmt> {
    let (action, log_type) = match kind {
        "invite" => ("user_invited", "team"),
        "recovery" | "magiclink" => ("user_recovery_requested", "user"),
        "confirmation" => ("user_confirmation_requested", "user"),
        _ => return None,
    };
    let id = user.str("id").unwrap_or_default();
    Some(match requester {
        LinkRequester::User { ip } => q::auth_event(action, log_type, &id, &username(user), None, ip),
        LinkRequester::Admin { ip } => q::auth_event(action, log_type, ADMIN_ACTOR, "service_role", Some(user_traits(&id, user)), ip),
    })
}

/// The client's PKCE challenge (`code_challenge`, `code_challenge_method`), sent with a request
/// that mails a link when supabase-js runs with `flowType: 'pkce'` (@supabase/ssr's default).
pub struct Pkce {
    pub(super) challenge: String,
    pub(super) method: &'static str,
}

impl Pkce {
    pub(super) fn from_body(body: &Value) -> AuthResult<Option<Pkce>> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        match (text("code_challenge"), text("code_challenge_method")) {
            (None, None) => Ok(None),
            (Some(challenge), Some(method)) => {
                let method = match method.to_ascii_lowercase().as_str() {
                    "s256" => "s256",
                    "plain" => "plain",
                    _ => return Err(AuthError::validation("code challenge method not supported")),
                };
                if !(43..=128).contains(&challenge.len()) {
                    return Err(AuthError::validation("code challenge has to be between 43 and 128 characters"));
                }
                Ok(Some(Pkce { challenge: challenge.to_string(), method }))
            }
            _ => Err(AuthError::validation("PKCE flow requires code_challenge_method and code_challenge")),
        }
    }
}

/// The flow a PKCE link belongs to, by its token kind (GoTrue's `authentication_method`).
fn flow_method(kind: &str) -> &'static str {
    match kind {
        "confirmation" | "signup" => "email/signup",
        "recovery" => "recovery",
        "email_change" => "email_change",
        "invite" => "invite",
        _ => "magiclink",
    }
}

fn flow_not_found() -> AuthError {
    AuthError::new(404, "flow_state_not_found", "invalid flow state, no valid flow state found")
}

/// The `amr` method of a session a token of this kind opens.
fn session_method(kind: &str) -> &'static str {
    match kind {
        "recovery" => "recovery",
        "invite" => "invite",
        "email_change" => "email_change",
        _ => "otp",
    }
}

fn link_type(kind: &str) -> &'static str {
    match kind {
        "confirmation" | "signup" => "signup",
        "recovery" => "recovery",
        "invite" => "invite",
        "email_change" => "email_change",
        _ => "magiclink",
    }
}

fn obj(v: Value) -> Value {
    if v.is_object() {
        v
    } else {
        json!({})
    }
}

/// `user_metadata.name` style lookups for signup hooks.
fn lookup_path(v: &Value, path: &str) -> Value {
    path.split('.').fold(v.clone(), |cur, k| cur.get(k).cloned().unwrap_or(Value::Null))
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Password hashing takes 7 MiB and a core for about ten milliseconds. It runs on a few threads of
/// its own (one per core), so a burst of sign-ins queues instead of multiplying memory, and only
/// those threads' allocator caches ever hold the hashing buffers. libsodium is built to take that
/// memory from `malloc` (.cargo/config.toml), so a busy thread reuses its buffer instead of having
/// the kernel map and zero 7 MiB per hash; a thread idle for a second hands it back.
struct Hashers(crossbeam_channel::Sender<Box<dyn FnOnce() + Send>>);

/// How long a hashing thread keeps its buffer without work.
const HASHER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

static HASHERS: std::sync::LazyLock<Hashers> = std::sync::LazyLock::new(|| {
    let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
    for i in 0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("basalt-hash-{i}")).spawn(move || {
            if i == 0 {
                // Made before the first sign-in, which would otherwise take two hashes' time.
                password::dummy_hash();
            }
            // The dummy hash left a buffer too.
            let mut holding = i == 0;
            loop {
                match rx.recv_timeout(HASHER_IDLE) {
                    Ok(job) => {
                        job();
                        holding = true;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        if std::mem::take(&mut holding) {
                            password::release_memory();
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a password hashing thread");
        }
    }
    Hashers(tx)
});

/// Starts the hashing threads, which make the dummy hash before the first sign-in needs it.
pub fn start_hashers() {
    std::sync::LazyLock::force(&HASHERS);
}

/// Runs `f` on a hashing thread and waits for its result.
async fn on_hasher<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> AuthResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    HASHERS
        .0
        .send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .map_err(|_| AuthError::internal("the password hashing threads have stopped"))?;
    rx.await.map_err(|_| AuthError::internal("a password hashing thread dropped a job"))
}

async fn hash_blocking(p: String) -> AuthResult<String> {
    on_hasher(move || password::hash(&p)).await?.map_err(AuthError::internal)
}

/// Verifies on a hashing thread; an unknown user is checked against a dummy hash so timing
/// does not reveal which addresses exist.
async fn verify_blocking(p: String, stored: String) -> bool {
    on_hasher(move || {
        if stored.is_empty() {
            let _ = password::verify(&p, password::dummy_hash());
            false
        } else {
            password::verify(&p, &stored)
        }
    })
    .await
    .unwrap_or(false)
}

/// The user column that records when a link of `kind` was last sent (a magic link, as GoTrue's,
/// counts as a recovery).
fn sent_column(kind: &str) -> &'static str {
    match kind {
        "recovery" | "magiclink" => "recovery_sent_at",
        "email_change" => "email_change_sent_at",
        "invite" => "invited_at",
        _ => "confirmation_sent_at",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Some(chrono::Duration::hours(24)));
        assert_eq!(parse_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration("500ms"), Some(chrono::Duration::milliseconds(500)));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_duration("10"), None);
    }

    #[test]
    fn emails() {
        assert!(is_email("a@b.co"));
        assert!(!is_email("a@b") && !is_email("@b.co") && !is_email("a b@c.de"));
    }
}
