//! TLS to PostgreSQL, as libpq reads it from the database URL. Managed PostgreSQL (Supabase,
//! Neon, RDS, Cloud SQL) wants encrypted connections, usually through the URL's `sslmode`, and
//! sometimes a CA file or a client certificate. tokio-postgres reads `sslmode` only as `disable`,
//! `prefer` or `require`, and refuses the file options, so they are taken out of the URL here,
//! and one `native-tls` connector (OpenSSL, already linked for mail) serves both the
//! tokio-postgres pools and Basalt's own request connections.

use std::path::PathBuf;
use std::str::FromStr;

use tokio_postgres::config::SslMode;

/// A database URL that cannot be used as it stands.
#[derive(Debug, thiserror::Error)]
pub enum PgUrlError {
    #[error("database URL: {0}")]
    Invalid(String),
    #[error("database URL: {0}")]
    Config(#[from] tokio_postgres::Error),
    #[error("database URL: cannot read {what} {path}: {source}")]
    File { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("database URL: TLS: {0}")]
    Tls(#[from] native_tls::Error),
}

/// libpq's `sslmode`, all six of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    /// libpq tries without TLS first; here it is `prefer` (encrypted when the server can).
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for Mode {
    type Err = PgUrlError;
    fn from_str(s: &str) -> Result<Mode, PgUrlError> {
        Ok(match s {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(PgUrlError::Invalid(format!(
                    "sslmode {other:?} is none of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }
}

/// Where trusted CA certificates come from: libpq's `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// The operating system's store (`sslrootcert=system`, or no `sslrootcert` with `verify-*`).
    System,
    /// Only the certificates of a PEM file.
    File(PathBuf),
}

/// The URL options read here: TLS's own, and `channel_binding` (which stays in the URL too).
const TLS_KEYS: [&str; 6] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslnegotiation", "channel_binding"];

/// The TLS options libpq reads, as found in the URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    negotiation: Option<String>,
    /// `channel_binding=require`, which stays in the URL for tokio-postgres.
    channel_binding_required: bool,
}

impl TlsOptions {
    /// Takes one option if it is TLS's; false leaves it for tokio-postgres.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, PgUrlError> {
        if key == "channel_binding" {
            self.channel_binding_required = value == "require";
            return Ok(false);
        }
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root_cert,
            "sslcert" => &mut self.cert,
            "sslkey" => &mut self.key,
            "sslnegotiation" => &mut self.negotiation,
            _ => return Ok(false),
        };
        *slot = Some(value.to_string());
        Ok(true)
    }
}

/// How to connect: the URL's settings for tokio-postgres, and its TLS.
pub struct PgConnect {
    pub config: tokio_postgres::Config,
    pub tls: PgTls,
}

/// The TLS a URL asks for, ready to connect with.
#[derive(Clone)]
pub struct PgTls {
    mode: Mode,
    connector: native_tls::TlsConnector,
}

impl PgTls {
    /// Whether to ask the server for TLS at all.
    pub fn wanted(&self) -> bool {
        self.mode != Mode::Disable
    }

    /// Whether a server that offers no TLS is refused.
    pub fn required(&self) -> bool {
        matches!(self.mode, Mode::Require | Mode::VerifyCa | Mode::VerifyFull)
    }

    pub fn connector(&self) -> &native_tls::TlsConnector {
        &self.connector
    }

    /// The same connector for tokio-postgres, which follows the URL's `sslmode` with it.
    pub fn for_tokio_postgres(&self) -> postgres_native_tls::MakeTlsConnector {
        postgres_native_tls::MakeTlsConnector::new(self.connector.clone())
    }
}

/// Reads a database URL (`postgres://...` or libpq's `key=value` form) as libpq would for
/// TLS: `sslmode` (default `prefer`), `sslrootcert` (a PEM file, or `system`), `sslcert` and
/// `sslkey` (a client certificate and its PKCS#8 PEM key). A `sslrootcert` file makes every
/// mode that encrypts check the chain, as libpq's does; `verify-full` without one trusts the
/// operating system's CAs, and `verify-ca` needs one (any public CA's certificate for any name
/// would pass it otherwise).
pub fn parse(url: &str) -> Result<PgConnect, PgUrlError> {
    let (rest, options) = split(url)?;
    let mut config = tokio_postgres::Config::from_str(&rest)?;
    let mode = match (options.mode.as_deref(), options.root_cert.as_deref()) {
        (Some(m), _) => m.parse()?,
        // As libpq: the system's CAs are for checking the host name too.
        (None, Some("system")) => Mode::VerifyFull,
        (None, _) => Mode::Prefer,
    };
    match options.negotiation.as_deref() {
        None | Some("postgres") => {}
        Some("direct") => {
            return Err(PgUrlError::Invalid(
                "sslnegotiation=direct is not supported; leave it out (TLS is then asked for as every PostgreSQL version understands)"
                    .into(),
            ))
        }
        Some(other) => return Err(PgUrlError::Invalid(format!("sslnegotiation {other:?} is neither postgres nor direct"))),
    }
    // As libpq, no TLS over Unix sockets (tokio-postgres would ask for it there too).
    let unix_only = !config.get_hosts().is_empty() && config.get_hosts().iter().all(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)));
    config.ssl_mode(match mode {
        _ if unix_only => SslMode::Disable,
        Mode::Disable => SslMode::Disable,
        Mode::Allow | Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    // tokio-postgres shakes hands only with a host name; with addresses alone, the address is
    // the name the certificate is checked against, as on the request connections.
    if config.get_hosts().is_empty() {
        for ip in config.get_hostaddrs().to_vec() {
            config.host(ip.to_string());
        }
    }
    let roots = match options.root_cert {
        Some(r) if r == "system" => Some(Roots::System),
        Some(r) => Some(Roots::File(PathBuf::from(r))),
        None => None,
    };
    match (&roots, mode) {
        (Some(Roots::System), m) if m != Mode::VerifyFull => {
            return Err(PgUrlError::Invalid("sslrootcert=system needs sslmode=verify-full, as in libpq".into()))
        }
        (None, Mode::VerifyCa) => {
            return Err(PgUrlError::Invalid(
                "sslmode=verify-ca needs sslrootcert=FILE, the CA to check the chain against (verify-full may use the system's CAs)".into(),
            ))
        }
        _ => {}
    }
    if options.channel_binding_required && mode == Mode::Disable {
        return Err(PgUrlError::Invalid("channel_binding=require needs TLS, which sslmode=disable turns off".into()));
    }
    // What is checked: with a root certificate file, the chain in every mode, as libpq.
    let (chain, host) = match mode {
        Mode::Disable | Mode::Allow | Mode::Prefer | Mode::Require => (matches!(roots, Some(Roots::File(_))), false),
        Mode::VerifyCa => (true, false),
        Mode::VerifyFull => (true, true),
    };
    let mut builder = native_tls::TlsConnector::builder();
    builder.danger_accept_invalid_certs(!chain).danger_accept_invalid_hostnames(!host);
    if chain {
        if let Some(Roots::File(path)) = &roots {
            let pem = std::fs::read(path).map_err(|source| PgUrlError::File { what: "sslrootcert", path: path.clone(), source })?;
            let certs = native_tls::Certificate::stack_from_pem(&pem)?;
            if certs.is_empty() {
                return Err(PgUrlError::Invalid(format!("sslrootcert {} holds no PEM certificate", path.display())));
            }
            builder.disable_built_in_roots(true);
            for cert in certs {
                builder.add_root_certificate(cert);
            }
        }
    }
    match (options.cert, options.key) {
        _ if mode == Mode::Disable => {}
        (Some(cert), Some(key)) => {
            let read = |what, path: String| {
                let path = PathBuf::from(path);
                std::fs::read(&path).map_err(|source| PgUrlError::File { what, path, source })
            };
            builder.identity(native_tls::Identity::from_pkcs8(&read("sslcert", cert)?, &read("sslkey", key)?)?);
        }
        (None, None) => {}
        _ => return Err(PgUrlError::Invalid("sslcert and sslkey go together".into())),
    }
    Ok(PgConnect { config, tls: PgTls { mode, connector: builder.build()? } })
}

/// Takes the TLS options out of a URL, leaving the rest for tokio-postgres.
fn split(url: &str) -> Result<(String, TlsOptions), PgUrlError> {
    let mut options = TlsOptions::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), options)) };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // Only TLS's values are decoded here: the rest (a password, say) goes on untouched.
            let key = percent_decode(key).unwrap_or_default();
            let ours = TLS_KEYS.contains(&key.as_str());
            let value = if ours {
                percent_decode(value).ok_or_else(|| PgUrlError::Invalid(format!("the value of {key} has a bad percent escape")))?
            } else {
                String::new()
            };
            if !ours || !options.take(&key, &value)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, options));
    }
    let mut kept = Vec::new();
    for (key, value, raw) in key_values(url)? {
        if !options.take(&key, &value)? {
            kept.push(raw);
        }
    }
    Ok((kept.join(" "), options))
}

/// A URL part with its `%XX` escapes decoded; None for a bad escape or text that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// libpq's `key=value` form: each setting with its value unquoted and its text as written.
fn key_values(s: &str) -> Result<Vec<(String, String, &str)>, PgUrlError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else { return Ok(out) };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(PgUrlError::Invalid(format!("{key:?} has no value")));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut end = s.len();
        loop {
            match chars.next() {
                None if quoted => return Err(PgUrlError::Invalid(format!("the value of {key:?} has no closing quote"))),
                None => break,
                Some((i, '\'')) if quoted => {
                    end = i + 1;
                    break;
                }
                Some((i, c)) if c.is_whitespace() && !quoted => {
                    end = i;
                    break;
                }
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) => value.push(c),
                    None => return Err(PgUrlError::Invalid(format!("the value of {key:?} ends in a backslash"))),
                },
                Some((_, c)) => value.push(c),
            }
        }
        out.push((key, value, &s[start..end]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> (String, TlsOptions) {
        split(url).expect("split")
    }

    #[test]
    fn tls_options_leave_the_url_and_the_rest_stays() {
        let (rest, o) =
            options("postgres://u:p%40ss@db.example.com:6543/app?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem");
        assert_eq!(rest, "postgres://u:p%40ss@db.example.com:6543/app?application_name=x");
        assert_eq!(o.mode.as_deref(), Some("verify-full"));
        assert_eq!(o.root_cert.as_deref(), Some("/tmp/ca.pem"));
        let (rest, o) = options("postgresql://db/app?sslmode=require");
        assert_eq!(rest, "postgresql://db/app");
        assert_eq!(o.mode.as_deref(), Some("require"));
        let (rest, o) = options("postgres://db/app");
        assert_eq!((rest.as_str(), o), ("postgres://db/app", TlsOptions::default()));
        // What is not TLS's goes on as written, bad escapes and all, and is never quoted back.
        let (rest, _) = options("postgres://db/app?password=50%&sslmode=require");
        assert_eq!(rest, "postgres://db/app?password=50%");
        let bad = split("postgres://db/app?sslrootcert=%zz%2").expect_err("a bad escape in a TLS value");
        assert!(!bad.to_string().contains("%zz"), "{bad}");
    }

    #[test]
    fn key_value_urls_are_read_as_libpq_reads_them() {
        let (rest, o) = options("host=db  port = 5432 sslmode=verify-ca sslrootcert='/a dir/ca.pem' password='it\\'s' user=me");
        assert_eq!(rest, "host=db port = 5432 password='it\\'s' user=me");
        assert_eq!(o.mode.as_deref(), Some("verify-ca"));
        assert_eq!(o.root_cert.as_deref(), Some("/a dir/ca.pem"));
        let cfg = tokio_postgres::Config::from_str(&rest).expect("the rest is tokio-postgres's");
        assert_eq!(cfg.get_password(), Some(&b"it's"[..]));
        // An escaped space ends no value; the settings after it stay apart.
        let (rest, _) = options("password=abc\\  user=me sslmode=disable");
        assert_eq!(rest, "password=abc\\  user=me");
        let cfg = tokio_postgres::Config::from_str(&rest).expect("parses");
        assert_eq!((cfg.get_password(), cfg.get_user()), (Some(&b"abc "[..]), Some("me")));
        assert!(split("host=db sslmode").is_err());
        assert!(split("host=db sslrootcert='/open").is_err());
    }

    #[test]
    fn modes_map_to_what_tokio_postgres_knows() {
        let mode = |url: &str| parse(url).map(|c| (c.config.get_ssl_mode(), c.tls.wanted(), c.tls.required()));
        assert!(matches!(mode("postgres://db/app").unwrap(), (SslMode::Prefer, true, false)));
        assert!(matches!(mode("postgres://db/app?sslmode=disable").unwrap(), (SslMode::Disable, false, false)));
        assert!(matches!(mode("postgres://db/app?sslmode=allow").unwrap(), (SslMode::Prefer, true, false)));
        assert!(matches!(mode("postgres://db/app?sslmode=require").unwrap(), (SslMode::Require, true, true)));
        assert!(matches!(mode("host=db sslmode=verify-full").unwrap(), (SslMode::Require, true, true)));
        assert!(matches!(mode("postgres://db/app?sslmode=verify-ca&sslrootcert=system"), Err(PgUrlError::Invalid(_))));
        assert!(matches!(mode("postgres://db/app?sslmode=verify-ca"), Err(PgUrlError::Invalid(_))), "verify-ca needs its CA");
        assert!(matches!(mode("postgres://db/app?sslmode=disable&channel_binding=require"), Err(PgUrlError::Invalid(_))));
        assert!(mode("postgres://db/app?channel_binding=require").is_ok());
        // As libpq: no TLS over a Unix socket, whatever the mode.
        assert!(matches!(mode("postgres://u@%2Fvar%2Frun%2Fpostgresql/db?sslmode=require").unwrap(), (SslMode::Disable, true, true)));
        // Addresses alone: each is also the name the certificate is checked against.
        let c = parse("hostaddr=127.0.0.1 user=u sslmode=require").unwrap();
        assert_eq!(c.config.get_hosts(), [tokio_postgres::config::Host::Tcp("127.0.0.1".into())]);
        assert!(mode("postgres://db/app?sslmode=verify-full&sslrootcert=system").is_ok());
        assert!(matches!(mode("postgres://db/app?sslrootcert=system").unwrap(), (SslMode::Require, true, true)));
        for bad in [
            "postgres://db/app?sslmode=on",
            "postgres://db/app?sslnegotiation=direct",
            "postgres://db/app?sslcert=/tmp/c.pem",
            "postgres://db/app?sslmode=%zz",
        ] {
            assert!(matches!(mode(bad), Err(PgUrlError::Invalid(_))), "{bad}");
        }
        let missing = parse("postgres://db/app?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").err().expect("no file");
        assert!(missing.to_string().contains("sslrootcert /nonexistent/ca.pem"), "{missing}");
    }
}
