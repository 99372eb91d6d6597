//! Basalt's PostgreSQL connections sign in with a password: SCRAM-SHA-256 (PostgreSQL's default,
//! and Supabase's), MD5 and cleartext; and they reach PostgreSQL over its Unix socket too. The shared test database trusts every local connection,
//! so this starts a private cluster (initdb) that asks each user for a password its own way.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{pg_admin_url, TestApp};
use crate::SCHEMA;

const PASSWORD: &str = "s3cret pw";

/// A PostgreSQL cluster of the test's own, stopped and removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The server's programs: `pg_config --bindir`, else Debian's versioned folders.
fn bindir() -> std::path::PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("PostgreSQL's initdb (the server's programs) must be installed for the PostgreSQL half")
}

/// Runs a server program, as the `postgres` user when the tests run as root (PostgreSQL
/// refuses to run as root).
fn pg_command(bin: &std::path::Path, program: &str) -> Command {
    let path = bin.join(program);
    if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

impl Cluster {
    fn start() -> Cluster {
        let bin = bindir();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        if as_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:"]).arg(dir.path());
            run(chown, "chown the cluster's folder to postgres");
        }
        let mut initdb = pg_command(&bin, "initdb");
        initdb.args(["-D"]).arg(&data).args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-N"]);
        run(initdb, "initdb");
        // Each user signs in its own way; the socket (in the test's folder) stays trusted for set-up.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all md5_user 127.0.0.1/32 md5\n\
             host all clear_user 127.0.0.1/32 password\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut postgres = pg_command(&bin, "postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "shared_buffers=16MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = postgres.spawn().expect("start postgres");
        let cluster = Cluster { dir, port, server };
        let ready = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            let mut psql = Command::new(bin.join("psql"));
            psql.args(["-h"]).arg(cluster.dir.path()).args(["-p", &port.to_string(), "-U", "postgres", "-c", "SELECT 1"]);
            psql.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        });
        assert!(ready, "the private PostgreSQL cluster did not start");
        cluster
    }

    /// Runs each statement on its own (`CREATE DATABASE` may not share a transaction).
    fn sql(&self, statements: &[&str]) {
        let mut psql = Command::new(bindir().join("psql"));
        psql.args(["-h"]).arg(self.dir.path()).args(["-p", &self.port.to_string(), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]);
        for s in statements {
            psql.args(["-c", s]);
        }
        run(psql, &statements.join(" "));
    }
}

/// Runs with the PostgreSQL half of the suite.
#[tokio::test]
async fn password_authentication() {
    if pg_admin_url().is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must set BASALT_TEST_DATABASE_URL");
        return;
    }
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.expect("cluster");
    for (user, encryption) in [("scram_user", "scram-sha-256"), ("md5_user", "md5"), ("clear_user", "scram-sha-256")] {
        cluster.sql(&[
            &format!("SET password_encryption = '{encryption}'; CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"),
            &format!("CREATE DATABASE {user}_db OWNER {user}"),
        ]);
        let url = format!("postgres://{user}:{}@127.0.0.1:{}/{user}_db", PASSWORD.replace(' ', "%20"), cluster.port);
        let app = TestApp::spawn_on(&url, SCHEMA, &[]).await;
        // A write (a transaction) and reads (plain, and counted) on the request connections.
        let (s, body) = app.post("/rest/v1/lists", json!({"name": user}), "return=representation").await;
        assert_eq!((s, body[0]["name"].as_str()), (201, Some(user)), "{user}: {body}");
        let (s, body) = app.get("/rest/v1/lists?select=name").await;
        assert_eq!((s, body), (200, json!([{"name": user}])), "{user}");
        let res = app.req(reqwest::Method::GET, "/rest/v1/lists").header("prefer", "count=exact").send().await.expect("count");
        assert_eq!(res.headers()["content-range"], "0-0/1", "{user}");
    }
    // Over the Unix socket (trusted), as a URL whose host is the socket's folder.
    let folder = cluster.dir.path().to_string_lossy().replace('/', "%2F");
    let url = format!("postgres://postgres@{folder}:{}/postgres", cluster.port);
    let app = TestApp::spawn_on(&url, SCHEMA, &[]).await;
    let (s, body) = app.post("/rest/v1/lists", json!({"name": "socket"}), "return=representation").await;
    assert_eq!((s, body[0]["name"].as_str()), (201, Some("socket")), "{body}");
    assert_eq!(app.get("/rest/v1/lists?select=name").await, (200, json!([{"name": "socket"}])));
}
