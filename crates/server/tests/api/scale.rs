//! Several instances on one PostgreSQL database behave as one service: the JWT secret, users,
//! sessions and refresh tokens are shared, and a migration reaches every instance without restart.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{admin_query, run_cli, send, Backend, TestApp};

const V1: &str = "[tables.items]\ncolumns.id = { type = \"bigint\", primary_key = true }\ncolumns.name = { type = \"text\" }\n";
const V2: &str = "[tables.items]\ncolumns.id = { type = \"bigint\", primary_key = true }\ncolumns.name = { type = \"text\" }\ncolumns.qty = { type = \"integer\", default = \"7\" }\n";

#[tokio::test]
async fn two_instances_share_one_database() {
    // No BASALT_JWT_SECRET: the first instance stores a secret in the database, the second reads it.
    let env = [("BASALT_JWT_SECRET", ""), ("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_AUTH_RATE_LIMIT_EMAIL_PER_MINUTE", "4")];
    let Some(one) = TestApp::spawn_with(Backend::Postgres, V1, &env).await else { return };
    let url = one.database_url.clone().expect("postgres");
    let two = TestApp::spawn_on(&url, V1, &env).await;
    assert_eq!((one.anon.as_str(), one.service.as_str()), (two.anon.as_str(), two.service.as_str()), "one secret for all instances");

    // A user signed up on one is served by the other: access token, refresh token, sign-out.
    let (access, refresh, id) = one.signup("multi@example.com", json!({})).await;
    let (s, user) = send(two.as_user(Method::GET, "/auth/v1/user", Some(&access))).await;
    assert_eq!((s, user["id"].as_str()), (200, Some(id.as_str())));
    let (s, session) =
        send(two.as_user(Method::POST, "/auth/v1/token?grant_type=refresh_token", None).json(&json!({"refresh_token": refresh}))).await;
    assert_eq!(s, 200, "{session}");
    let (s, _) = send(
        one.as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "multi@example.com", "password": "password-123"})),
    )
    .await;
    assert_eq!(s, 200);

    // Rate limits are counted in the database: four attempts spread over both, the fifth refused.
    let attempt = |app: &TestApp| {
        app.as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "limited@example.com", "password": "x"}))
    };
    for app in [&one, &two, &one, &two] {
        assert_eq!(send(attempt(app)).await.0, 400);
    }
    assert_eq!(send(attempt(&one)).await.0, 429);

    // A migration applied through the CLI reaches both running instances.
    one.post("/rest/v1/items", json!({"id": 1, "name": "a"}), "").await;
    let v2 = one.dir.path().join("v2.toml");
    std::fs::write(&v2, V2).expect("write");
    let (ok, out, err) = run_cli(&["migrate", "--schema", v2.to_str().expect("path"), "--database-url", &url], &[]);
    assert!(ok, "{out}{err}");
    for app in [&one, &two] {
        let mut last = (0, json!(null));
        for _ in 0..50 {
            last = app.get("/rest/v1/items?select=id,qty").await;
            if last.0 == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(last, (200, json!([{"id": 1, "qty": 7}])), "the new column is served without a restart");
    }
    drop(two);
}

/// TLS to PostgreSQL as the URL's `sslmode` says, as libpq: `prefer` (the default) encrypts
/// when the server can, `disable` never does, `verify-full` checks the certificate against the
/// URL's `sslrootcert` and the host name, and a certificate that does not check out stops the
/// server with the reason. Both of Basalt's pools (its own work and the data API's requests) go
/// the same way.
#[tokio::test]
async fn postgres_connections_use_tls_as_the_url_says() {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true")];
    let Some(one) = TestApp::spawn_with(Backend::Postgres, V1, &env).await else { return };
    let url = one.database_url.clone().expect("postgres");
    let db = url.rsplit('/').next().expect("database name").split('?').next().expect("name").to_string();
    // Connections of this database's Basalt instances, by whether they are encrypted; those
    // that served the data API's read last (the request pool's) among them.
    let count_where = |ssl: bool, more: &str| {
        admin_query(
            &url,
            &format!(
                "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                 WHERE datname = '{db}' AND application_name = 'basalt' AND ssl = {ssl} {more}"
            ),
        )[0]
        .parse::<u32>()
        .expect("count")
    };
    let count = |ssl: bool| count_where(ssl, "");
    let reads = |ssl: bool| count_where(ssl, "AND query LIKE '%json_agg%FROM \"items\"%'");
    let work = |app: &TestApp, n: i64| {
        let (app_url, anon) = (app.url.clone(), app.anon.clone());
        let service = app.service.clone();
        async move {
            let client = reqwest::Client::new();
            let (s, body) = send(
                client
                    .post(format!("{app_url}/rest/v1/items"))
                    .header("apikey", &service)
                    .header("authorization", format!("Bearer {service}"))
                    .json(&json!({"id": n, "name": "tls"})),
            )
            .await;
            assert_eq!(s, 201, "{body}");
            let (s, rows) = send(
                client
                    .get(format!("{app_url}/rest/v1/items?id=eq.{n}&select=name"))
                    .header("apikey", &service)
                    .header("authorization", format!("Bearer {service}")),
            )
            .await;
            assert_eq!((s, rows), (200, json!([{"name": "tls"}])));
            let (s, body) = send(
                client
                    .post(format!("{app_url}/auth/v1/signup"))
                    .header("apikey", &anon)
                    .json(&json!({"email": format!("tls{n}@example.com"), "password": "password-123"})),
            )
            .await;
            assert_eq!(s, 200, "{body}");
        }
    };
    work(&one, 1).await;
    // This test is about TLS: the server it runs against has it (Debian's default).
    assert_eq!(admin_query(&url, "SHOW ssl"), ["on"], "the test PostgreSQL must have ssl = on");
    assert!(count(true) >= 2 && reads(true) >= 1, "the default (prefer) encrypts both pools' connections");
    assert_eq!(count(false), 0);

    let with = |url: &str, query: &str| format!("{url}{}{query}", if url.contains('?') { '&' } else { '?' });
    let plain = TestApp::spawn_on(&with(&url, "sslmode=disable"), V1, &env).await;
    work(&plain, 2).await;
    assert!(count(false) >= 2 && reads(false) >= 1, "sslmode=disable encrypts nothing");
    drop(plain);

    // The server's own certificate as the only CA, and the host name it was made for.
    let cert = admin_query(&url, "SHOW ssl_cert_file").remove(0);
    let localhost = url.replacen("@127.0.0.1:", "@localhost:", 1);
    assert_ne!(localhost, url, "the test database URL names 127.0.0.1");
    let checked = TestApp::spawn_on(&with(&localhost, &format!("sslmode=verify-full&sslrootcert={cert}")), V1, &env).await;
    work(&checked, 3).await;
    drop(checked);

    let v1 = one.dir.path().join("schema.toml");
    let migrate =
        |database_url: String| run_cli(&["migrate", "--schema", v1.to_str().expect("path"), "--database-url", &database_url], &[]);
    let (ok, out, err) = migrate(with(&url, &format!("sslmode=verify-full&sslrootcert={cert}")));
    assert!(!ok && err.contains("certificate verify failed"), "127.0.0.1 is not the name in the certificate: {out}{err}");
    // A CA that signed nothing (made for this test, its key thrown away).
    let unrelated = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/unrelated-ca.pem");
    let (ok, out, err) = migrate(with(&localhost, &format!("sslmode=verify-full&sslrootcert={unrelated}")));
    assert!(!ok && err.contains("certificate verify failed"), "another CA did not make it: {out}{err}");
    let (ok, out, err) = migrate(with(&url, "sslmode=verify-ca"));
    assert!(!ok && err.contains("verify-ca needs sslrootcert"), "{out}{err}");
    let (ok, out, err) = migrate(with(&url, "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem"));
    assert!(!ok && err.contains("sslrootcert /nonexistent/ca.pem"), "{out}{err}");
    let (ok, out, err) = migrate(with(&url, &format!("sslmode=verify-ca&sslrootcert={cert}")));
    assert!(ok, "verify-ca checks the chain, not the name: {out}{err}");
}
