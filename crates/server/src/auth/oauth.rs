//! Sign-in with an OAuth provider, as GoTrue's `/authorize` and `/callback`: the browser goes to
//! the provider with a sealed `state`, comes back with a code, which Basalt exchanges for the
//! provider's token and profile; the user is found by identity, linked by verified e-mail, or
//! created; the browser returns to the app with a session (implicit flow) or a code for
//! `grant_type=pkce` (PKCE flow).

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use super::error::{AuthError, AuthResult};
use super::service::{urlencode, AuthService, Client, Pkce, Session};
use super::settings::ExternalProvider;
use crate::store::auth_sql::{self as q, NewUser};
use crate::store::portable::{Row, RowExt};

/// How long the browser may take at the provider.
const STATE_SECONDS: i64 = 600;

/// Where a provider lives and what it is asked for.
struct Endpoints {
    authorize: &'static str,
    token: &'static str,
    userinfo: &'static str,
    scopes: &'static str,
}

fn endpoints(provider: &str) -> Endpoints {
    match provider {
        "google" => Endpoints {
            authorize: "https://accounts.google.com/o/oauth2/v2/auth",
            token: "https://oauth2.googleapis.com/token",
            userinfo: "https://openidconnect.googleapis.com/v1/userinfo",
            scopes: "openid email profile",
        },
        _ => Endpoints {
            authorize: "https://github.com/login/oauth/authorize",
            token: "https://github.com/login/oauth/access_token",
            userinfo: "https://api.github.com/user",
            scopes: "user:email",
        },
    }
}

/// The provider's account, as Basalt keeps it in `identity_data` and `user_metadata`.
pub(super) struct External {
    pub(super) id: String,
    pub(super) email: Option<String>,
    pub(super) email_verified: bool,
    pub(super) data: Value,
}

/// What `/authorize` (and `linkIdentity`) asks for.
#[derive(Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    pub provider: &'a str,
    pub redirect_to: Option<&'a str>,
    /// Scopes beyond the provider's default ones.
    pub scopes: Option<&'a str>,
    /// `{code_challenge, code_challenge_method}` for the PKCE flow.
    pub pkce: &'a Value,
    /// Query parameters passed on to the provider (supabase-js' `queryParams`).
    pub extra: &'a [(String, String)],
    /// The signed-in user an identity is linked to.
    pub link: Option<&'a str>,
}

/// Where `/callback` sends the browser, and what it carries there.
pub enum Landing {
    /// Implicit flow: the session in the fragment, with the provider's token.
    Session { to: String, session: Session, provider_token: String, provider_refresh_token: Option<String> },
    /// PKCE flow: the code for `grant_type=pkce` in the query.
    Code { to: String, code: String },
    /// An error, in the fragment (implicit) or the query (PKCE), as GoTrue sends it.
    Error { to: String, in_query: bool, error: AuthError },
}

impl Landing {
    pub fn location(&self) -> String {
        let join = |to: &str| if to.contains('?') { '&' } else { '?' };
        match self {
            Landing::Session { to, session, provider_token, provider_refresh_token } => {
                let provider_refresh =
                    provider_refresh_token.as_deref().map(|t| format!("&provider_refresh_token={}", urlencode(t))).unwrap_or_default();
                format!(
                    "{to}#access_token={}&expires_at={}&expires_in={}&provider_token={}{provider_refresh}&refresh_token={}&token_type=bearer",
                    session.access_token,
                    session.expires_at,
                    session.expires_in,
                    urlencode(provider_token),
                    session.refresh_token
                )
            }
            Landing::Code { to, code } => format!("{to}{}code={code}", join(to)),
            Landing::Error { to, in_query, error } => {
                let kind = if error.status >= 500 { "server_error" } else { "access_denied" };
                let params = format!("error={kind}&error_code={}&error_description={}", error.code, urlencode(&error.message));
                if *in_query {
                    format!("{to}{}{params}", join(to))
                } else {
                    format!("{to}#{params}")
                }
            }
        }
    }
}

pub(super) fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("Basalt/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

fn provider_failed(what: &str, e: impl std::fmt::Display) -> AuthError {
    tracing::warn!(cause = %e, "OAuth provider: {what}");
    AuthError::new(500, "unexpected_failure", format!("Error getting user profile from external provider: {what}"))
}

impl AuthService {
    pub(super) fn provider(&self, name: &str) -> AuthResult<&ExternalProvider> {
        self.settings
            .external
            .get(name)
            .filter(|p| p.enabled)
            .ok_or_else(|| AuthError::validation("Unsupported provider: provider is not enabled"))
    }

    fn callback_url(&self, p: &ExternalProvider) -> String {
        p.redirect_uri.clone().unwrap_or_else(|| format!("{}/auth/v1/callback", self.base_url))
    }

    /// GET /authorize: where to send the browser (the provider's consent page).
    pub async fn authorize(&self, r: &AuthorizeRequest<'_>, client: &Client<'_>) -> AuthResult<String> {
        let AuthorizeRequest { provider, redirect_to, scopes, pkce, extra, link } = *r;
        let p = self.provider(provider)?;
        self.rate_limit("authorize", client, None).await?;
        if provider == "apple" {
            return Err(AuthError::validation("Apple sign-in takes an ID token: use signInWithIdToken"));
        }
        let ends = endpoints(provider);
        let target = self.settings.redirect(redirect_to);
        let flow = match Pkce::from_body(pkce)? {
            Some(pkce) => {
                let id = uuid::Uuid::new_v4().to_string();
                let code = uuid::Uuid::new_v4().to_string();
                let lapsed = (chrono::Utc::now() - chrono::Duration::seconds(STATE_SECONDS)).to_rfc3339();
                self.store
                    .batch(vec![
                        q::delete_lapsed_oauth_flows(&lapsed),
                        q::insert_oauth_flow_state(&id, &code, pkce.method, &pkce.challenge, provider),
                    ])
                    .await?;
                Some(id)
            }
            None => None,
        };
        let state = self.jwt.seal(
            json!({"provider": provider, "redirect_to": target, "flow": flow, "link": link, "exp": chrono::Utc::now().timestamp() + STATE_SECONDS})
                .to_string()
                .as_bytes(),
        );
        let mut scope = ends.scopes.to_string();
        for extra in scopes.unwrap_or_default().split([' ', ',']).filter(|s| !s.is_empty()) {
            if !scope.split(' ').any(|s| s == extra) {
                scope.push(' ');
                scope.push_str(extra);
            }
        }
        let mut url = format!(
            "{}?client_id={}&redirect_uri={}&response_type=code&scope={}&state={}",
            p.authorize_url.as_deref().unwrap_or(ends.authorize),
            urlencode(p.client_ids().next().unwrap_or_default()),
            urlencode(&self.callback_url(p)),
            urlencode(&scope),
            urlencode(&state),
        );
        const FIXED: &[&str] = &["client_id", "redirect_uri", "response_type", "scope", "state"];
        for (k, v) in extra.iter().filter(|(k, _)| !FIXED.contains(&k.as_str())) {
            url.push_str(&format!("&{}={}", urlencode(k), urlencode(v)));
        }
        Ok(url)
    }

    /// GET /callback: the provider sent the browser back with a code (or an error).
    pub async fn callback(&self, code: Option<&str>, state: Option<&str>, error: Option<(&str, &str)>, client: &Client<'_>) -> Landing {
        let sealed = state.and_then(|s| self.jwt.unseal(s)).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(state) = sealed.filter(|s| s["exp"].as_i64().is_some_and(|exp| exp >= chrono::Utc::now().timestamp())) else {
            return Landing::Error {
                to: self.settings.site_url.clone(),
                in_query: false,
                error: AuthError::new(400, "bad_oauth_state", "OAuth state parameter missing, invalid or expired"),
            };
        };
        let to = state["redirect_to"].as_str().map_or_else(|| self.settings.site_url.clone(), str::to_string);
        let flow = state["flow"].as_str().map(str::to_string);
        let provider = state["provider"].as_str().unwrap_or_default().to_string();
        let link = state["link"].as_str().map(str::to_string);
        let outcome = async {
            if let Some((error, description)) = error {
                return Err(AuthError::new(403, "bad_oauth_callback", format!("{error}: {description}")));
            }
            let code = code
                .filter(|c| !c.is_empty())
                .ok_or_else(|| AuthError::new(400, "bad_oauth_callback", "OAuth callback with missing authorization code"))?;
            let (ext, token) = self.fetch_profile(&provider, code).await?;
            let user = match &link {
                Some(user_id) => self.link_external(user_id, &provider, ext, client.ip).await?,
                None => self.sign_in_external(&provider, ext, client, Some(&to)).await?,
            };
            match &flow {
                Some(flow) => {
                    let rows = self.store.batch(vec![q::finish_oauth_flow(flow, &user.str("id").unwrap_or_default())]).await?;
                    let code = rows.into_iter().next().and_then(|mut r| r.pop()).and_then(|r| r.str("auth_code"));
                    code.map(|c| (None, Some(c), token))
                        .ok_or_else(|| AuthError::new(404, "flow_state_not_found", "invalid flow state, no valid flow state found"))
                }
                None => Ok((Some(self.start_session(&user, "oauth", client).await?), None, token)),
            }
        }
        .await;
        match outcome {
            Ok((Some(session), _, (provider_token, provider_refresh_token))) => {
                Landing::Session { to, session, provider_token, provider_refresh_token }
            }
            Ok((None, Some(code), _)) => Landing::Code { to, code },
            Ok(_) => Landing::Error { to, in_query: flow.is_some(), error: AuthError::internal("no session and no code") },
            Err(error) => Landing::Error { to, in_query: flow.is_some(), error },
        }
    }

    /// The code for the provider's token, the token for the account.
    async fn fetch_profile(&self, provider: &str, code: &str) -> AuthResult<(External, (String, Option<String>))> {
        let p = self.provider(provider)?;
        let ends = endpoints(provider);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.callback_url(p)),
            ("client_id", p.client_ids().next().unwrap_or_default()),
            ("client_secret", &p.secret),
        ];
        let token: Value = http()
            .post(p.token_url.as_deref().unwrap_or(ends.token))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| provider_failed("token request", e))?
            .json()
            .await
            .map_err(|e| provider_failed("token response", e))?;
        let access = token["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
            let why = token["error_description"].as_str().or(token["error"].as_str()).unwrap_or("no access_token");
            AuthError::new(400, "bad_oauth_callback", format!("Unable to exchange external code: {why}"))
        })?;
        let userinfo = p.userinfo_url.as_deref().unwrap_or(ends.userinfo);
        let get = |url: String| async move {
            let res = http()
                .get(&url)
                .bearer_auth(access)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| provider_failed("profile request", e))?;
            if !res.status().is_success() {
                return Err(provider_failed("profile request", res.status()));
            }
            res.json::<Value>().await.map_err(|e| provider_failed("profile response", e))
        };
        let profile = get(userinfo.to_string()).await?;
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let ext = match provider {
            "google" => {
                let id = text(&profile, "sub").ok_or_else(|| provider_failed("profile", "no sub"))?;
                let email = text(&profile, "email");
                let verified = profile["email_verified"].as_bool().unwrap_or(false);
                let data = json!({
                    "iss": "https://accounts.google.com", "sub": id, "provider_id": id,
                    "email": email, "email_verified": verified, "phone_verified": false,
                    "name": text(&profile, "name"), "full_name": text(&profile, "name"),
                    "picture": text(&profile, "picture"), "avatar_url": text(&profile, "picture"),
                });
                External { id, email, email_verified: verified, data }
            }
            _ => {
                let id = match &profile["id"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) if !s.is_empty() => s.clone(),
                    _ => return Err(provider_failed("profile", "no id")),
                };
                // The primary verified address, from the e-mails endpoint (the profile's may be hidden).
                let emails = get(format!("{}/emails", userinfo.trim_end_matches('/'))).await.unwrap_or(Value::Null);
                let primary = emails
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| e["primary"].as_bool() == Some(true) && e["verified"].as_bool() == Some(true))
                    .and_then(|e| text(e, "email"));
                let (email, verified) = match primary {
                    Some(e) => (Some(e), true),
                    None => (text(&profile, "email"), false),
                };
                let data = json!({
                    "iss": "https://api.github.com", "sub": id, "provider_id": id,
                    "email": email, "email_verified": verified, "phone_verified": false,
                    "name": text(&profile, "name"), "full_name": text(&profile, "name"),
                    "user_name": text(&profile, "login"), "preferred_username": text(&profile, "login"),
                    "avatar_url": text(&profile, "avatar_url"),
                });
                External { id, email, email_verified: verified, data }
            }
        };
        let refresh = token["refresh_token"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
        Ok((ext, (access.to_string(), refresh)))
    }

    /// `linkIdentity`: the provider account joins the signed-in user who started the flow. An
    /// anonymous user becomes a permanent one, with the provider's verified address if free.
    async fn link_external(&self, user_id: &str, provider: &str, ext: External, ip: &str) -> AuthResult<Row> {
        let user = self.one(q::user_by_id(user_id)).await?.ok_or_else(|| AuthError::new(404, "user_not_found", "User not found"))?;
        self.check_can_sign_in(&user)?;
        let email = ext.email.as_deref().filter(|_| ext.email_verified);
        let mut stmts = Vec::new();
        match self.one(q::identity_by_provider(provider, &ext.id)).await? {
            Some(owner) if owner.str("user_id").as_deref() != Some(user_id) => {
                return Err(AuthError::new(422, "identity_already_exists", "Identity is already linked to another user"));
            }
            Some(owner) => stmts.push(q::refresh_identity(&owner.str("id").unwrap_or_default(), ext.data.clone(), ext.email.as_deref())),
            None => {
                stmts.push(q::insert_identity(
                    &uuid::Uuid::new_v4().to_string(),
                    user_id,
                    provider,
                    &ext.id,
                    ext.email.as_deref(),
                    ext.data.clone(),
                ));
                stmts.push(q::set_user_field(user_id, "raw_app_meta_data", with_provider(user.json("raw_app_meta_data"), provider)));
            }
        }
        if user.flag("is_anonymous") {
            stmts.push(q::set_user_field(user_id, "is_anonymous", json!(false)));
            if let Some(e) = email.filter(|_| user.str("email").is_none_or(|s| s.is_empty())) {
                if self.one(q::user_by_email(e)).await?.is_some() {
                    return Err(AuthError::new(422, "email_exists", "A user with this email address has already been registered"));
                }
                stmts.push(q::set_user_field(user_id, "email", json!(e)));
                stmts.push(q::confirm_email(user_id));
            }
        }
        stmts.push(q::auth_event(
            "identity_linked",
            "user",
            user_id,
            &user.str("email").unwrap_or_default(),
            Some(json!({"provider": provider})),
            ip,
        ));
        self.store.batch(stmts).await?;
        self.one(q::user_by_id(user_id)).await?.ok_or_else(|| AuthError::internal("user vanished"))
    }

    /// `unlinkIdentity`: never the user's last identity.
    pub async fn unlink_identity(&self, user: &Row, identity_id: &str) -> AuthResult<()> {
        let user_id = user.str("id").unwrap_or_default();
        let identities = self.store.batch(vec![q::identities_of(&user_id)]).await?.pop().unwrap_or_default();
        let Some(gone) = identities.iter().find(|i| i.str("id").as_deref() == Some(identity_id)) else {
            return Err(AuthError::new(404, "identity_not_found", "Identity doesn't exist"));
        };
        if identities.len() <= 1 {
            return Err(AuthError::new(422, "single_identity_not_deletable", "User must have at least 1 identity after unlinking"));
        }
        let provider = gone.str("provider").unwrap_or_default();
        let mut stmts = vec![q::delete_identity(identity_id, &user_id)];
        if identities.iter().filter(|i| i.str("provider").as_deref() == Some(provider.as_str())).count() == 1 {
            let mut meta = user.json("raw_app_meta_data");
            if let Some(list) = meta.get_mut("providers").and_then(Value::as_array_mut) {
                list.retain(|p| p.as_str() != Some(provider.as_str()));
            }
            if meta.get("provider").and_then(Value::as_str) == Some(provider.as_str()) {
                let next = identities.iter().find(|i| i.str("id").as_deref() != Some(identity_id)).and_then(|i| i.str("provider"));
                meta["provider"] = json!(next);
            }
            stmts.push(q::set_user_field(&user_id, "raw_app_meta_data", meta));
        }
        stmts.push(q::auth_event(
            "identity_unlinked",
            "user",
            &user_id,
            &user.str("email").unwrap_or_default(),
            Some(json!({"provider": provider})),
            "",
        ));
        self.store.batch(stmts).await?;
        Ok(())
    }

    /// The user of this provider account: by identity, else by verified e-mail (linked), else new.
    pub(super) async fn sign_in_external(
        &self,
        provider: &str,
        ext: External,
        client: &Client<'_>,
        redirect_to: Option<&str>,
    ) -> AuthResult<Row> {
        let ip = client.ip;
        let email = ext.email.as_deref().filter(|_| ext.email_verified);
        let needs_verification = || {
            AuthError::new(
                422,
                "provider_email_needs_verification",
                format!("Unverified email with {provider}. A confirmation email has been sent to your {provider} email"),
            )
        };
        if let Some(identity) = self.one(q::identity_by_provider(provider, &ext.id)).await? {
            let user_id = identity.str("user_id").unwrap_or_default();
            self.store
                .batch(vec![
                    q::refresh_identity(&identity.str("id").unwrap_or_default(), ext.data.clone(), ext.email.as_deref()),
                    q::touch_user_now(&user_id, "last_sign_in_at"),
                ])
                .await?;
            let mut user = self.one(q::user_by_id(&user_id)).await?.ok_or_else(|| AuthError::internal("identity without user"))?;
            self.check_can_sign_in(&user)?;
            if user.str("email").is_some_and(|e| !e.is_empty()) && user.str("email_confirmed_at").is_none() {
                // The address is confirmed now if the provider vouches for it; else not yet.
                if email.is_none() && !self.settings.autoconfirm {
                    return Err(needs_verification());
                }
                self.store.batch(vec![q::confirm_email(&user_id)]).await?;
                user = self.one(q::user_by_id(&user_id)).await?.unwrap_or(user);
            }
            return Ok(user);
        }
        if let Some(existing) = match email {
            Some(e) => self.one(q::user_by_email(e)).await?,
            None => None,
        } {
            // The provider vouches for the address: link. An unconfirmed account's password goes,
            // so whoever registered the address without owning it cannot sign in with it.
            let user_id = existing.str("id").unwrap_or_default();
            let unconfirmed = existing.str("email_confirmed_at").is_none();
            let mut stmts = Vec::new();
            let mut app_meta = existing.json("raw_app_meta_data");
            if unconfirmed {
                // Whoever registered the address without confirming it may not own it: their
                // password, identities and sessions go before the owner's identity comes in.
                stmts.push(q::delete_identities_of(&user_id));
                stmts.push(q::delete_sessions_of(&user_id, None));
                stmts.push(q::set_user_field(&user_id, "encrypted_password", Value::Null));
                stmts.push(q::confirm_email(&user_id));
                app_meta["providers"] = json!([]);
                app_meta["provider"] = json!(provider);
            }
            stmts.extend([
                q::insert_identity(&uuid::Uuid::new_v4().to_string(), &user_id, provider, &ext.id, email, ext.data.clone()),
                q::set_user_field(&user_id, "raw_app_meta_data", with_provider(app_meta, provider)),
                q::touch_user_now(&user_id, "last_sign_in_at"),
                q::auth_event("identity_linked", "user", &user_id, email.unwrap_or_default(), Some(json!({"provider": provider})), ip),
            ]);
            self.store.batch(stmts).await?;
            let user = self.one(q::user_by_id(&user_id)).await?.ok_or_else(|| AuthError::internal("user vanished"))?;
            self.check_can_sign_in(&user)?;
            return Ok(user);
        }
        if self.settings.disable_signup {
            return Err(AuthError::new(422, "signup_disabled", "Signups not allowed for this instance"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let user = self
            .create_user_with(
                NewUser {
                    id: &id,
                    email: ext.email.as_deref(),
                    password_hash: None,
                    confirmed: ext.email_verified || self.settings.autoconfirm,
                    app_metadata: Self::app_metadata(provider),
                    user_metadata: ext.data.clone(),
                    is_anonymous: false,
                    invited: false,
                    ip,
                },
                Some((provider, &ext.id, ext.data)),
            )
            .await?;
        self.store.batch(vec![q::touch_user_now(&id, "last_sign_in_at")]).await?;
        let user = self.one(q::user_by_id(&id)).await?.unwrap_or(user);
        self.check_can_sign_in(&user)?;
        // An address the provider does not vouch for is confirmed by mail before any session,
        // so no one signs in holding someone else's address.
        if ext.email.is_some() && !ext.email_verified && !self.settings.autoconfirm {
            self.send_link(&user, "signup", "confirmation", redirect_to, client, None).await?;
            return Err(needs_verification());
        }
        Ok(user)
    }
}

/// `app_metadata` with `provider` in its `providers`.
fn with_provider(mut meta: Value, provider: &str) -> Value {
    if !meta.is_object() {
        meta = json!({});
    }
    let mut providers: Vec<Value> = meta["providers"].as_array().cloned().unwrap_or_default();
    if !providers.iter().any(|p| p.as_str() == Some(provider)) {
        providers.push(json!(provider));
    }
    meta["providers"] = Value::Array(providers);
    meta
}
