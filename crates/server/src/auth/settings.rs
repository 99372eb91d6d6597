//! Auth settings: the `[auth]` section, overridden by `BASALT_AUTH_*` variables.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Seconds an access token lives.
    pub jwt_exp: i64,
    /// Sign-up returns a session at once, without e-mail confirmation (GoTrue's mailer_autoconfirm).
    pub autoconfirm: bool,
    pub disable_signup: bool,
    pub anonymous_enabled: bool,
    /// New users may sign up, but sign in only once an admin sets app_metadata.approved = true.
    pub require_approval: bool,
    pub min_password_length: usize,
    /// A password change needs the code `POST /reauthenticate` mails (the `nonce`) unless the
    /// session was opened in the last 24 hours (GoTrue's `update_password_require_reauthentication`,
    /// Supabase's `secure_password_change`).
    pub secure_password_change: bool,
    /// Where e-mail links send the browser when no allowed redirect_to is given.
    pub site_url: String,
    /// Extra allowed redirect_to prefixes.
    pub redirect_urls: Vec<String>,
    /// Seconds a refresh token may be presented again after rotation.
    pub refresh_reuse_interval: i64,
    /// Seconds an e-mail link or code stays valid.
    pub otp_exp: i64,
    /// Requests per minute per client IP on sign-up, token, recover, otp and verify.
    pub rate_limit_ip_per_minute: u32,
    /// Requests per minute per e-mail address on the same endpoints.
    pub rate_limit_email_per_minute: u32,
    /// Seconds before a user may be sent another mail of the same kind (GoTrue's
    /// `SMTP_MAX_FREQUENCY`, Supabase's "minimum interval between emails"); 0 turns it off.
    pub mail_max_frequency: i64,
    /// Outgoing mail; without it, mail goes to the outbox folder in the data folder.
    pub smtp: Option<SmtpSettings>,
    /// `linkIdentity` (GoTrue's `SECURITY_MANUAL_LINKING_ENABLED`): off by default, since a link
    /// URL sent to someone else would attach their provider account to the sender's user.
    pub manual_linking_enabled: bool,
    /// OAuth providers by name (`github`, `google`): `[auth.external.github]`.
    pub external: std::collections::BTreeMap<String, ExternalProvider>,
}

/// The providers Basalt knows how to talk to.
pub const PROVIDERS: &[&str] = &["apple", "github", "google"];

/// An OAuth provider's app: GoTrue's `GOTRUE_EXTERNAL_<NAME>_*`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalProvider {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// For ID tokens (`signInWithIdToken`), the audience they must name.
    pub client_id: String,
    /// Not needed by providers used only through ID tokens (Apple).
    #[serde(default)]
    pub secret: String,
    /// The callback URL registered with the provider; default `<public URL>/auth/v1/callback`.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The provider's endpoints, for an enterprise install (GitHub Enterprise) or a stand-in;
    /// default the public ones.
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub userinfo_url: Option<String>,
    /// Where the provider publishes the keys of its ID tokens, and the issuer they name.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
}

fn yes() -> bool {
    true
}

impl ExternalProvider {
    /// `client_id` may list several, comma-separated (a web app and its iOS and Android apps):
    /// ID tokens may name any as audience; the browser flow uses the first.
    pub fn client_ids(&self) -> impl Iterator<Item = &str> {
        self.client_id.split(',').map(str::trim).filter(|c| !c.is_empty())
    }
}

/// The client secret never reaches logs.
impl std::fmt::Debug for ExternalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalProvider")
            .field("enabled", &self.enabled)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("userinfo_url", &self.userinfo_url)
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// An SMTP relay for auth e-mail.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub pass: Option<String>,
    /// The sender, e.g. `Basalt <no-reply@example.com>`.
    pub from: String,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (a local relay).
    #[serde(default = "default_tls")]
    pub tls: String,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_tls() -> String {
    "starttls".into()
}

/// The password never reaches logs.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_exp: 3600,
            autoconfirm: false,
            disable_signup: false,
            anonymous_enabled: false,
            require_approval: false,
            min_password_length: 6,
            secure_password_change: false,
            site_url: "http://localhost:3000".into(),
            redirect_urls: Vec::new(),
            refresh_reuse_interval: 10,
            otp_exp: 3600,
            rate_limit_ip_per_minute: 120,
            rate_limit_email_per_minute: 30,
            mail_max_frequency: 60,
            smtp: None,
            manual_linking_enabled: false,
            external: Default::default(),
        }
    }
}

impl AuthSettings {
    /// Applies `BASALT_AUTH_*` environment variables on top of the file's values.
    pub fn with_env(mut self) -> Self {
        let flag = |name: &str| std::env::var(name).ok().map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<i64>().ok());
        if let Some(b) = flag("BASALT_AUTH_AUTOCONFIRM") {
            self.autoconfirm = b;
        }
        if let Some(b) = flag("BASALT_AUTH_DISABLE_SIGNUP") {
            self.disable_signup = b;
        }
        if let Some(b) = flag("BASALT_AUTH_ANONYMOUS_ENABLED") {
            self.anonymous_enabled = b;
        }
        if let Some(b) = flag("BASALT_AUTH_REQUIRE_APPROVAL") {
            self.require_approval = b;
        }
        if let Some(b) = flag("BASALT_AUTH_MANUAL_LINKING_ENABLED") {
            self.manual_linking_enabled = b;
        }
        if let Some(b) = flag("BASALT_AUTH_SECURE_PASSWORD_CHANGE") {
            self.secure_password_change = b;
        }
        if let Some(n) = num("BASALT_AUTH_REFRESH_REUSE_INTERVAL") {
            self.refresh_reuse_interval = n.max(0);
        }
        if let Some(n) = num("BASALT_AUTH_JWT_EXP") {
            self.jwt_exp = n;
        }
        if let Some(n) = num("BASALT_AUTH_MIN_PASSWORD_LENGTH") {
            self.min_password_length = n.max(1) as usize;
        }
        if let Some(n) = num("BASALT_AUTH_RATE_LIMIT_IP_PER_MINUTE") {
            self.rate_limit_ip_per_minute = n.max(1) as u32;
        }
        if let Some(n) = num("BASALT_AUTH_RATE_LIMIT_EMAIL_PER_MINUTE") {
            self.rate_limit_email_per_minute = n.max(1) as u32;
        }
        if let Some(n) = num("BASALT_AUTH_MAIL_MAX_FREQUENCY") {
            self.mail_max_frequency = n.max(0);
        }
        if let Ok(u) = std::env::var("BASALT_AUTH_SITE_URL") {
            self.site_url = u;
        }
        for name in PROVIDERS {
            let var = |key: &str| std::env::var(format!("BASALT_AUTH_EXTERNAL_{}_{key}", name.to_ascii_uppercase())).ok();
            if let Some(client_id) = var("CLIENT_ID") {
                let entry = self.external.entry(name.to_string()).or_insert(ExternalProvider {
                    enabled: true,
                    client_id: String::new(),
                    secret: String::new(),
                    redirect_uri: None,
                    authorize_url: None,
                    token_url: None,
                    userinfo_url: None,
                    jwks_url: None,
                    issuer: None,
                });
                entry.client_id = client_id;
            }
            if let (Some(p), Some(secret)) = (self.external.get_mut(*name), var("SECRET")) {
                p.secret = secret;
            }
            if let Some(p) = self.external.get_mut(*name) {
                if let Some(b) = flag(&format!("BASALT_AUTH_EXTERNAL_{}_ENABLED", name.to_ascii_uppercase())) {
                    p.enabled = b;
                }
                for (key, field) in [
                    ("REDIRECT_URI", &mut p.redirect_uri),
                    ("AUTHORIZE_URL", &mut p.authorize_url),
                    ("TOKEN_URL", &mut p.token_url),
                    ("USERINFO_URL", &mut p.userinfo_url),
                    ("JWKS_URL", &mut p.jwks_url),
                    ("ISSUER", &mut p.issuer),
                ] {
                    if let Some(v) = var(key) {
                        *field = Some(v);
                    }
                }
            }
        }
        if let Ok(host) = std::env::var("BASALT_SMTP_HOST") {
            let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
            self.smtp = Some(SmtpSettings {
                host,
                port: var("BASALT_SMTP_PORT").and_then(|p| p.parse().ok()).unwrap_or(587),
                user: var("BASALT_SMTP_USER"),
                pass: var("BASALT_SMTP_PASS"),
                from: var("BASALT_SMTP_FROM").unwrap_or_else(|| "Basalt <no-reply@localhost>".into()),
                tls: var("BASALT_SMTP_TLS").unwrap_or_else(default_tls),
            });
        }
        self
    }

    /// `redirect_to` if it starts with the site URL or an allowed prefix, else the site URL.
    pub fn redirect(&self, wanted: Option<&str>) -> String {
        match wanted {
            Some(w) if std::iter::once(&self.site_url).chain(self.redirect_urls.iter()).any(|allowed| within(w, allowed)) => w.to_string(),
            _ => self.site_url.clone(),
        }
    }
}

/// `wanted` is `allowed` itself or lies under it: the next character after the prefix must end
/// the origin or path segment, so `http://site.com.evil.net` is not under `http://site.com`.
fn within(wanted: &str, allowed: &str) -> bool {
    match wanted.strip_prefix(allowed) {
        Some("") => true,
        Some(rest) => allowed.ends_with('/') || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redirects_stay_on_allowed_origins() {
        let s = super::AuthSettings { site_url: "http://localhost:3000".into(), ..Default::default() };
        assert_eq!(s.redirect(Some("http://localhost:3000/welcome")), "http://localhost:3000/welcome");
        assert_eq!(s.redirect(Some("http://localhost:3000.evil.net/x")), "http://localhost:3000");
        assert_eq!(s.redirect(Some("http://localhost:30001")), "http://localhost:3000");
        assert_eq!(s.redirect(Some("https://evil.net")), "http://localhost:3000");
    }
}
