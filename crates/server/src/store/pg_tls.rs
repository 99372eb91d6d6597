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

/// The TLS options libpq reads, as found in the URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    negotiation: Option<String>,
}

impl TlsOptions {
    /// Takes one option if it is TLS's; false leaves it for tokio-postgres.
    fn take(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root_cert,
            "sslcert" => &mut self.cert,
            "sslkey" => &mut self.key,
            "sslnegotiation" => &mut self.negotiation,
            _ => return false,
        };
        *slot = Some(value);
        true
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
/// `sslkey` (a client certificate and its PKCS#8 PEM key). `require` with a `sslrootcert`
/// checks the chain, as libpq's does; `verify-ca` and `verify-full` without one trust the
/// operating system's CAs.
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
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Allow | Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let roots = match options.root_cert {
        Some(r) if r == "system" => Some(Roots::System),
        Some(r) => Some(Roots::File(PathBuf::from(r))),
        None => None,
    };
    if roots == Some(Roots::System) && !matches!(mode, Mode::VerifyFull) {
        return Err(PgUrlError::Invalid("sslrootcert=system needs sslmode=verify-full, as in libpq".into()));
    }
    // What is checked: libpq's `require` becomes `verify-ca` when a root certificate is given.
    let (chain, host) = match mode {
        Mode::Disable | Mode::Allow | Mode::Prefer => (false, false),
        Mode::Require => (roots.is_some(), false),
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
            if !options.take(&percent_decode(key)?, percent_decode(value)?) {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, options));
    }
    let mut kept = Vec::new();
    for (key, value, raw) in key_values(url)? {
        if !options.take(&key, value) {
            kept.push(raw);
        }
    }
    Ok((kept.join(" "), options))
}

/// A URL part with its `%XX` escapes decoded.
fn percent_decode(s: &str) -> Result<String, PgUrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| PgUrlError::Invalid(format!("bad percent escape in {s:?}")))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgUrlError::Invalid(format!("{s:?} is not UTF-8 once decoded")))
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
        loop {
            match chars.next() {
                None if quoted => return Err(PgUrlError::Invalid(format!("the value of {key:?} has no closing quote"))),
                None => break,
                Some((_, '\'')) if quoted => break,
                Some((_, c)) if c.is_whitespace() && !quoted => break,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) => value.push(c),
                    None => return Err(PgUrlError::Invalid(format!("the value of {key:?} ends in a backslash"))),
                },
                Some((_, c)) => value.push(c),
            }
        }
        let end = chars.peek().map_or(s.len(), |(i, _)| *i);
        out.push((key, value, s[start..end].trim_end()));
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
    }

    #[test]
    fn key_value_urls_are_read_as_libpq_reads_them() {
        let (rest, o) = options("host=db  port = 5432 sslmode=verify-ca sslrootcert='/a dir/ca.pem' password='it\\'s' user=me");
        assert_eq!(rest, "host=db port = 5432 password='it\\'s' user=me");
        assert_eq!(o.mode.as_deref(), Some("verify-ca"));
        assert_eq!(o.root_cert.as_deref(), Some("/a dir/ca.pem"));
        let cfg = tokio_postgres::Config::from_str(&rest).expect("the rest is tokio-postgres's");
        assert_eq!(cfg.get_password(), Some(&b"it's"[..]));
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
