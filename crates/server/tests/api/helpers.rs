//! spawn_app(): the real `basalt` binary on a random port with a fresh data folder, or a fresh
//! PostgreSQL database when BASALT_TEST_DATABASE_URL is set.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub const SECRET: &str = "test-secret-0123456789-0123456789-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub url: String,
    pub anon: String,
    pub service: String,
    /// The opaque keys (`sb_publishable_…`, `sb_secret_…`) the server prints after the project keys.
    pub opaque: (String, String),
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
    pub client: reqwest::Client,
    child: Child,
    admin_url: Option<String>,
    db_name: Option<String>,
}

/// The admin URL for PostgreSQL tests, if the run has one.
pub fn pg_admin_url() -> Option<String> {
    std::env::var("BASALT_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// Replaces the database name in a postgres URL.
pub fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').filter(|i| *i > base.find("://").map_or(0, |s| s + 2)).unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..cut])
}

/// Runs SQL (several statements allowed) on the admin connection.
pub fn admin_sql(admin: &str, sql: &str) {
    admin_query(admin, sql);
}

/// The first column of each row a query returns, as text (NULL as an empty string).
pub fn admin_query(url: &str, sql: &str) -> Vec<String> {
    let url = url.to_string();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.expect("admin query");
            rows.iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_string()),
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .expect("admin thread")
}

/// Creates a fresh database (PostgreSQL) and returns its URL.
/// Drops a database made by [`fresh_database`] when the test ends, passed or failed.
pub struct DropDatabase {
    pub admin: String,
    pub name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        admin_sql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

pub fn fresh_database() -> Option<(String, String, String)> {
    let admin = pg_admin_url()?;
    let name = format!("basalt_t_{}", uuid::Uuid::new_v4().simple());
    admin_sql(&admin, &format!("CREATE DATABASE {name}"));
    Some((with_db(&admin, &name), admin, name))
}

impl TestApp {
    /// Starts a server for `schema`; None for PostgreSQL when the run has no database URL.
    pub async fn spawn(backend: Backend, schema: &str) -> Option<TestApp> {
        Self::spawn_with(backend, schema, &[]).await
    }

    /// A server on an existing PostgreSQL database (another instance's); it does not drop it.
    pub async fn spawn_on(database_url: &str, schema: &str, env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("schema.toml"), schema).expect("write schema");
        let Started { child, url, anon, service, opaque } =
            start(dir.path(), Some(database_url), env).unwrap_or_else(|e| panic!("server did not start: {e}"));
        TestApp {
            opaque,
            url,
            anon,
            service,
            dir,
            database_url: Some(database_url.to_string()),
            client: reqwest::Client::new(),
            child,
            admin_url: None,
            db_name: None,
        }
    }

    pub async fn spawn_with(backend: Backend, schema: &str, env: &[(&str, &str)]) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, admin_url, db_name) = match backend {
            Backend::Sqlite => (None, None, None),
            Backend::Postgres => match fresh_database() {
                Some((u, a, n)) => (Some(u), Some(a), Some(n)),
                None => {
                    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must set BASALT_TEST_DATABASE_URL");
                    eprintln!("BASALT_TEST_DATABASE_URL not set: PostgreSQL half skipped");
                    return None;
                }
            },
        };
        std::fs::write(dir.path().join("schema.toml"), schema).expect("write schema");
        let child = start(dir.path(), database_url.as_deref(), env).unwrap_or_else(|e| panic!("server did not start: {e}"));
        let Started { child, url, anon, service, opaque } = child;
        Some(TestApp { url, anon, service, opaque, dir, database_url, client: reqwest::Client::new(), child, admin_url, db_name })
    }

    /// `host:port`, for raw connections.
    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_string()
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .header("apikey", &self.service)
            .header("authorization", format!("Bearer {}", self.service))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value, prefer: &str) -> (u16, Value) {
        send(self.req(Method::POST, path).header("prefer", prefer).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value, prefer: &str) -> (u16, Value) {
        send(self.req(Method::PATCH, path).header("prefer", prefer).json(&body)).await
    }

    pub async fn delete(&self, path: &str, prefer: &str) -> (u16, Value) {
        send(self.req(Method::DELETE, path).header("prefer", prefer)).await
    }
}

impl TestApp {
    /// A request with the anon key and, when given, a user's access token.
    pub fn as_user(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let rb = self.client.request(method, format!("{}{path}", self.url)).header("apikey", &self.anon);
        match token {
            Some(t) => rb.header("authorization", format!("Bearer {t}")),
            None => rb,
        }
    }

    /// Signs a user up (autoconfirm on) and returns (access token, refresh token, user id).
    pub async fn signup(&self, email: &str, data: Value) -> (String, String, String) {
        let (s, body) = send(
            self.as_user(Method::POST, "/auth/v1/signup", None)
                .json(&serde_json::json!({"email": email, "password": "password-123", "data": data})),
        )
        .await;
        assert_eq!(s, 200, "signup {email}: {body}");
        let t = |k: &str| body[k].as_str().unwrap_or_else(|| panic!("{k} in {body}")).to_string();
        (t("access_token"), t("refresh_token"), body["user"]["id"].as_str().expect("user id").to_string())
    }

    /// The newest outbox message to `to`.
    pub fn last_mail(&self, to: &str) -> Value {
        let dir = self.dir.path().join("data").join("outbox");
        let mut files: Vec<_> = std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        files
            .iter()
            .rev()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .find(|m| m["to"] == to)
            .unwrap_or_else(|| panic!("no mail to {to} in {}", dir.display()))
    }
}

/// Sends and returns (status, JSON body or Null when empty/not JSON).
/// Sends one raw HTTP/1.1 request and hangs up `after` it without reading the answer: to the
/// server, a caller that went away mid-request.
pub async fn send_and_hang_up(host: &str, request: &str, after: Duration) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    tokio::time::sleep(after).await;
}

pub async fn send(rb: RequestBuilder) -> (u16, Value) {
    let res: Response = rb.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A server that printed its address and keys.
struct Started {
    child: Child,
    url: String,
    anon: String,
    service: String,
    opaque: (String, String),
}

fn start(dir: &std::path::Path, database_url: Option<&str>, env: &[(&str, &str)]) -> Result<Started, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
    cmd.arg("serve")
        .arg("--schema")
        .arg(dir.join("schema.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0");
    if let Some(u) = database_url {
        cmd.arg("--database-url").arg(u);
    }
    cmd.env("BASALT_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .env_remove("BASALT_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    // The server's log is read and dropped: a pipe nobody reads fills up, and a server whose
    // log write blocks stops answering.
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    }
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut found = Vec::new();
        while let Some(Ok(line)) = lines.next() {
            found.push(line);
            if found.len() == 5 {
                let _ = tx.send(found.clone());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(lines) => {
            let url = lines[0].split_whitespace().find(|w| w.starts_with("http://")).ok_or("no url")?.to_string();
            let key = |i: usize| lines[i].split_whitespace().last().unwrap_or_default().to_string();
            let opaque = lines[4].split_whitespace().filter(|w| w.starts_with("sb_")).map(str::to_string).collect::<Vec<_>>();
            let opaque = match opaque.as_slice() {
                [public, secret] => (public.clone(), secret.clone()),
                _ => return Err(format!("no opaque keys in {:?}", lines[4])),
            };
            Ok(Started { child, url, anon: key(2), service: key(3), opaque })
        }
        Err(_) => {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            Err(err)
        }
    }
}

/// Runs `basalt` with args against this app's data; returns (success, stdout, stderr).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
    cmd.args(args).env_remove("BASALT_JWT_SECRET").env_remove("BASALT_DATABASE_URL").env("RUST_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run basalt");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (Some(admin), Some(name)) = (&self.admin_url, &self.db_name) {
            admin_sql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Defines `sqlite` and `postgres` tests running the same async body.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}
