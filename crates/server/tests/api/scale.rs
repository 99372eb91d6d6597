//! Several instances on one PostgreSQL database behave as one service: the JWT secret, users,
//! sessions and refresh tokens are shared, and a migration reaches every instance without restart.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{run_cli, send, Backend, TestApp};

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
