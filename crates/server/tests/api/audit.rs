//! The audit trail: every change to an audited table leaves one hash-chained entry, written in
//! the change's transaction, with who, from where and what (secrets redacted); only the
//! service role reads it; editing the log is detected by `/audit/v1/verify` and `basalt audit verify`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{admin_sql, run_cli, send, Backend, TestApp};

const SCHEMA: &str = r#"
[tables.keys]
owner = "user_id"
audit = { redact = ["api_key"] }
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.user_id = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id", on_delete = "cascade" }
columns.name    = { type = "text", not_null = true }
columns.api_key = { type = "text" }
columns.meta    = { type = "jsonb", default = "'{}'" }
columns.active  = { type = "boolean", default = "true" }

[tables.scratch]
owner = "user_id"
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.user_id = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id", on_delete = "cascade" }

[tables.pairs]
audit = true
columns.n   = { type = "integer", primary_key = true }
columns.tag = { type = "text", primary_key = true }
"#;

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, body) = app.get(&format!("/audit/v1/entries{query}")).await;
    assert_eq!(s, 200, "{body}");
    body.as_array().cloned().unwrap_or_else(|| panic!("entries: {body}"))
}

/// Changes the log behind Basalt's back, as someone with database access could.
fn tamper(app: &TestApp, sql_sqlite: &str, sql_pg: &str) {
    match &app.database_url {
        Some(url) => admin_sql(url, sql_pg),
        None => {
            let conn = rusqlite::Connection::open(app.dir.path().join("data").join("data.db")).expect("open data.db");
            conn.execute_batch(sql_sqlite).expect("tamper");
        }
    }
}

fn verify_cli(app: &TestApp) -> (bool, String) {
    let data = app.dir.path().join("data").display().to_string();
    let args: Vec<&str> = match &app.database_url {
        Some(url) => vec!["audit", "verify", "--database-url", url],
        None => vec!["audit", "verify", "--data-dir", &data],
    };
    let (ok, out, err) = run_cli(&args, &[]);
    (ok, format!("{out}{err}"))
}

async fn records_every_change(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, _, uid) = app.signup("audited@example.com", json!({})).await;
    let user = |m: Method, path: &str| app.as_user(m, path, Some(&token)).header("user-agent", "audit-test/1.0");

    let res = user(Method::POST, "/rest/v1/keys")
        .header("prefer", "return=representation")
        .header("x-request-id", "req-123")
        .json(&json!({"name": "openai", "api_key": "sk-secret-1", "meta": {"model": "gpt"}}))
        .send()
        .await
        .expect("insert");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["x-request-id"], "req-123", "the request id is echoed");
    let row: Value = res.json().await.expect("json");
    let id = row[0]["id"].as_str().expect("id").to_string();

    let res = user(Method::PATCH, &format!("/rest/v1/keys?id=eq.{id}")).json(&json!({"name": "openai-2"})).send().await.expect("update");
    assert_eq!(res.status().as_u16(), 204);
    let generated = res.headers()["x-request-id"].to_str().expect("request id").to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "a request id is made when none is sent: {generated}");

    // Failed writes and unaudited tables leave nothing.
    let (s, _) = send(user(Method::POST, "/rest/v1/keys").json(&json!({"id": id, "name": "dup"}))).await;
    assert_eq!(s, 409);
    let (s, _) = send(user(Method::POST, "/rest/v1/keys").json(&json!([{"name": "ok"}, {"name": null}]))).await;
    assert_eq!(s, 400, "a batch with one bad row fails whole");
    let (s, _) = send(user(Method::POST, "/rest/v1/scratch").json(&json!({}))).await;
    assert_eq!(s, 201);
    let (s, _) = send(user(Method::DELETE, &format!("/rest/v1/keys?id=eq.{id}"))).await;
    assert_eq!(s, 204);

    let all = entries(&app, "").await;
    let log = entries(&app, "?table=keys").await;
    let ops: Vec<&str> = log.iter().map(|e| e["op"].as_str().unwrap_or_default()).collect();
    assert_eq!(ops, ["INSERT", "UPDATE", "DELETE"], "{log:#?}");
    let chain: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap_or_default()).collect();
    assert_eq!(chain, (1..=all.len() as i64).collect::<Vec<_>>(), "chain positions have no gaps");
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap_or_default()).collect();
    assert_eq!((seqs[1] - seqs[0], seqs[2] - seqs[1]), (1, 1), "the three changes follow each other");
    assert!(log.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()), "oldest first");
    for e in &log {
        assert_eq!(e["table_name"], "keys");
        assert_eq!(e["row_id"], id.as_str());
        assert_eq!(e["actor_id"], uid.as_str());
        assert_eq!(e["actor_role"], "authenticated");
        assert_eq!(e["ip"], "127.0.0.1");
        assert_eq!(e["user_agent"], "audit-test/1.0");
        assert_eq!(e["hash"].as_str().map(str::len), Some(64));
    }
    assert_eq!(log[1]["prev_hash"], log[0]["hash"], "each entry names the one before");
    let (insert, update, delete) = (&log[0], &log[1], &log[2]);
    assert_eq!(insert["request_id"], "req-123");
    assert_eq!(update["request_id"], generated.as_str());
    assert_eq!(insert["old_row"], Value::Null);
    assert_eq!(insert["new_row"]["name"], "openai");
    assert_eq!(insert["new_row"]["meta"], json!({"model": "gpt"}), "JSON columns stay JSON");
    assert_eq!(insert["new_row"]["active"], true, "booleans stay booleans");
    assert_eq!(insert["new_row"]["api_key"], "[redacted]");
    assert_eq!(update["old_row"]["name"], "openai");
    assert_eq!(update["new_row"]["name"], "openai-2");
    assert_eq!(delete["old_row"]["name"], "openai-2");
    assert_eq!(delete["new_row"], Value::Null);
    assert!(!serde_json::to_string(&log).expect("text").contains("sk-secret-1"), "the secret never reaches the log");

    let first = log[0]["seq"].as_i64().unwrap_or_default();
    let page = entries(&app, &format!("?table=keys&row_id={id}&after={first}&limit=1")).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], log[1]["id"]);
    assert!(entries(&app, "?table=scratch").await.is_empty());
    assert_eq!(entries(&app, &format!("?actor_id={uid}")).await.len(), 3, "a user's history");
    assert!(entries(&app, &format!("?actor_id={}", uuid::Uuid::new_v4())).await.is_empty());
    assert_eq!(entries(&app, &format!("?actor_id={uid}")).await, log);
    assert_eq!(entries(&app, &format!("?table=keys&row_id={id}&limit=2")).await, log[..2].to_vec());
    assert_eq!(entries(&app, &format!("?table=keys&row_id={id}&after={first}")).await, log[1..].to_vec());
    let (s, body) = app.get("/audit/v1/entries?limit=-5").await;
    assert_eq!((s, body["code"].as_str()), (400, Some("PGRST100")), "{body}");

    // Only the service role reads the log.
    let (s, _) = send(app.as_user(Method::GET, "/audit/v1/entries", Some(&token))).await;
    assert_eq!(s, 403);
    let (s, _) = send(app.as_user(Method::GET, "/audit/v1/verify", None)).await;
    assert_eq!(s, 401);
    // And no data-API path reaches its tables.
    let (s, _) = app.get("/rest/v1/basalt_audit_log").await;
    assert_eq!(s, 404);

    let (s, v) = app.get("/audit/v1/verify").await;
    assert_eq!(s, 200);
    let n = all.len() as i64;
    assert_eq!((v["ok"].as_bool(), v["entries"].as_i64(), v["unsealed"].as_i64()), (Some(true), Some(n), Some(0)), "{v}");
    assert_eq!(v["head"], log[2]["hash"]);
    let (ok, out) = verify_cli(&app);
    assert!(ok && out.contains(&format!("ok: {n} entries")), "{out}");

    tamper(
        &app,
        "UPDATE basalt_audit_log SET user_agent = 'edited' WHERE id = 2",
        "UPDATE basalt.audit_log SET user_agent = 'edited' WHERE id = 2",
    );
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(2)), "{v}");
    // Entries edited into what the log never holds fail the check; they do not fail the read.
    tamper(
        &app,
        "UPDATE basalt_audit_log SET new_row = X'ff00' WHERE id = 3",
        "UPDATE basalt.audit_log SET prev_hash = NULL WHERE seq = 3",
    );
    let (s, v) = app.get("/audit/v1/verify").await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(false)), "{v}");
    let (s, _) = app.get("/audit/v1/entries").await;
    assert_eq!(s, 200);
    let (ok, out) = verify_cli(&app);
    assert!(!ok && out.contains("BROKEN at entry 2"), "{out}");
    if app.database_url.is_some() {
        // Taking an edited entry out of the chain to have it sealed again leaves a gap.
        tamper(&app, "", "UPDATE basalt.audit_log SET seq = NULL, prev_hash = NULL, hash = NULL, user_agent = 'forged' WHERE seq = 2");
        let (_, v) = app.get("/audit/v1/verify").await;
        assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(2)), "{v}");
    }
}

/// On PostgreSQL, concurrent writers from several connections all land in one gapless chain.
async fn concurrent_writes_chain(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, _, _) = app.signup("many@example.com", json!({})).await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..40 {
        let rb = app.as_user(Method::POST, "/rest/v1/keys", Some(&token)).json(&json!({"name": format!("k{i}")}));
        writes.spawn(async move { send(rb).await.0 });
    }
    let statuses: Vec<u16> = writes.join_all().await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!(
        (v["ok"].as_bool(), v["entries"].as_i64(), v["unsealed"].as_i64()),
        (Some(true), Some(42), Some(0)),
        "40 inserts after sign-up and login: {v}"
    );
}

/// Auth events land in GoTrue's `auth.audit_log_entries`, chained into the audit trail.
async fn auth_events(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, refresh, uid) = app.signup("events@example.com", json!({})).await;
    let body = json!({"email": "events@example.com", "password": "password-123"});
    let (s, _) = send(app.as_user(Method::POST, "/auth/v1/token?grant_type=password", None).json(&body)).await;
    assert_eq!(s, 200);
    let (s, _) =
        send(app.as_user(Method::POST, "/auth/v1/token?grant_type=refresh_token", None).json(&json!({"refresh_token": refresh}))).await;
    assert_eq!(s, 200);
    let (s, _) = send(app.as_user(Method::PUT, "/auth/v1/user", Some(&token)).json(&json!({"password": "password-456"}))).await;
    assert_eq!(s, 200);
    let (s, _) = send(app.as_user(Method::POST, "/auth/v1/logout", Some(&token))).await;
    assert_eq!(s, 204);
    let (s, _) = app.delete(&format!("/auth/v1/admin/users/{uid}"), "").await;
    assert_eq!(s, 200);
    let log = entries(&app, "?table=auth.audit_log_entries").await;
    let actions: Vec<&str> = log.iter().map(|e| e["new_row"]["payload"]["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        actions,
        ["user_signedup", "login", "login", "token_refreshed", "user_updated_password", "logout", "user_deleted"],
        "{log:#?}"
    );
    let login = &log[2]["new_row"];
    assert_eq!(
        (login["payload"]["actor_id"].as_str(), login["payload"]["actor_username"].as_str()),
        (Some(uid.as_str()), Some("events@example.com"))
    );
    for e in &log {
        assert_eq!(e["new_row"]["ip_address"], "127.0.0.1", "the client's address: {e}");
    }
    assert_eq!(login["payload"]["traits"]["provider"], "email");
    assert!(!serde_json::to_string(&log).expect("text").contains("password-"), "no password reaches the log");
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

/// One-time links and admin changes leave GoTrue's events: recovery and magic links by the user,
/// invites and admin updates by the service role, and the accepted invite by the invitee.
async fn link_and_admin_events(b: Backend) {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_AUTH_MAIL_MAX_FREQUENCY", "0")];
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &env).await else { return };
    let (_, _, uid) = app.signup("links@example.com", json!({})).await;
    let post = |path: &str, body: Value| app.as_user(Method::POST, path, None).json(&body);
    let (s, _) = send(post("/auth/v1/recover", json!({"email": "links@example.com"}))).await;
    assert_eq!(s, 200);
    let (s, _) = send(post("/auth/v1/otp", json!({"email": "links@example.com"}))).await;
    assert_eq!(s, 200);
    let (s, invited) = app.post("/auth/v1/invite", json!({"email": "guest@example.com"}), "").await;
    assert_eq!(s, 200, "{invited}");
    let guest = invited["id"].as_str().expect("id").to_string();
    let code = app.last_mail("guest@example.com")["otp"].as_str().expect("otp").to_string();
    let (s, _) = send(post("/auth/v1/verify", json!({"type": "invite", "email": "guest@example.com", "token": code}))).await;
    assert_eq!(s, 200);
    let (s, _) = send(
        app.req(Method::PUT, &format!("/auth/v1/admin/users/{uid}"))
            .json(&json!({"user_metadata": {"plan": "pro"}, "email": "links2@example.com"})),
    )
    .await;
    assert_eq!(s, 200);
    let log = entries(&app, "?table=auth.audit_log_entries").await;
    let events: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| {
            let p = &e["new_row"]["payload"];
            (
                p["action"].as_str().unwrap_or_default(),
                p["log_type"].as_str().unwrap_or_default(),
                p["actor_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let admin = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        events,
        [
            ("user_signedup", "team", uid.as_str()),
            ("login", "account", uid.as_str()),
            ("user_recovery_requested", "user", uid.as_str()),
            ("user_recovery_requested", "user", uid.as_str()),
            ("user_signedup", "team", guest.as_str()),
            ("user_invited", "team", admin),
            ("invite_accepted", "account", guest.as_str()),
            ("login", "account", guest.as_str()),
            ("user_modified", "user", admin),
        ],
        "{log:#?}"
    );
    assert_eq!(log[5]["new_row"]["payload"]["traits"]["user_email"], "guest@example.com");
    let traits = &log[8]["new_row"]["payload"]["traits"];
    assert_eq!((traits["user_id"].as_str(), traits["user_email"].as_str()), (Some(uid.as_str()), Some("links2@example.com")));
    for e in &log {
        assert_eq!(e["new_row"]["ip_address"], "127.0.0.1", "the client's address, the admin's too: {e}");
    }
    assert!(!serde_json::to_string(&log).expect("text").contains(&code), "no one-time code reaches the log");
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

/// Behind a trusted proxy, auth events and audit entries record the address it forwarded; a
/// client that is not a trusted proxy cannot choose the address it is logged under.
async fn forwarded_client_address(b: Backend) {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_TRUSTED_PROXIES", "127.0.0.1/32, ::1")];
    for (env, logged) in [(&env[..], "203.0.113.7"), (&env[..1], "127.0.0.1")] {
        let Some(app) = TestApp::spawn_with(b, SCHEMA, env).await else { return };
        let xff = "198.51.100.1, 203.0.113.7";
        let (s, body) = send(
            app.as_user(Method::POST, "/auth/v1/signup", None)
                .header("x-forwarded-for", xff)
                .json(&json!({"email": "proxied@example.com", "password": "password-123"})),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        let token = body["access_token"].as_str().expect("token");
        let (s, _) =
            send(app.as_user(Method::POST, "/rest/v1/keys", Some(token)).header("x-forwarded-for", xff).json(&json!({"name": "k"}))).await;
        assert_eq!(s, 201);
        let events = entries(&app, "?table=auth.audit_log_entries").await;
        assert_eq!(events[0]["new_row"]["ip_address"], logged, "{events:#?}");
        let rows = entries(&app, "?table=keys").await;
        assert_eq!(rows[0]["ip"], logged, "{rows:#?}");
    }
}

/// A composite key is written alike on both backends, as a JSON array.
async fn composite_keys(b: Backend) {
    let Some(app) = TestApp::spawn(b, SCHEMA).await else { return };
    let (s, _) = app.post("/rest/v1/pairs", json!({"n": 1, "tag": "a"}), "").await;
    assert_eq!(s, 201);
    let log = entries(&app, "?table=pairs").await;
    assert_eq!(log[0]["row_id"], r#"[1,"a"]"#, "{log:#?}");
    assert_eq!(entries(&app, r#"?table=pairs&row_id=[1,"a"]"#).await.len(), 1);
}

/// Removing the newest entries is caught by the chain head.
async fn a_cut_tail_is_detected(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, _, _) = app.signup("cut@example.com", json!({})).await;
    for name in ["a", "b"] {
        let (s, _) = send(app.as_user(Method::POST, "/rest/v1/keys", Some(&token)).json(&json!({"name": name}))).await;
        assert_eq!(s, 201);
    }
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!((v["ok"].as_bool(), v["entries"].as_i64()), (Some(true), Some(4)), "sign-up, login and two inserts: {v}");
    tamper(&app, "DELETE FROM basalt_audit_log WHERE id = 2", "DELETE FROM basalt.audit_log WHERE seq = 2");
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!((v["ok"].as_bool(), v["entries"].as_i64()), (Some(false), Some(1)), "{v}");
}

/// Turning the trail on for an existing table (with a change that rebuilds it on SQLite) and
/// off again, through `basalt migrate`.
async fn turned_on_and_off_by_migration(b: Backend) {
    const PLAIN: &str = "[tables.items]\ncolumns.id = { type = \"bigint\", primary_key = true }\ncolumns.name = { type = \"text\" }\n";
    let audited = PLAIN.replace("[tables.items]\n", "[tables.items]\naudit = true\n")
        + "columns.at = { type = \"timestamptz\", default = \"now()\" }\n";
    let Some(app) = TestApp::spawn(b, PLAIN).await else { return };
    let migrate = |schema: &str| {
        let file = app.dir.path().join("next.toml");
        std::fs::write(&file, schema).expect("write");
        let mut args = vec!["migrate".to_string(), "--schema".into(), file.display().to_string(), "--allow-destructive".into()];
        match &app.database_url {
            Some(u) => args.extend(["--database-url".to_string(), u.clone()]),
            None => args.extend(["--data-dir".to_string(), app.dir.path().join("data").display().to_string()]),
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = run_cli(&refs, &[]);
        assert!(ok, "{out}{err}");
        out
    };
    app.post("/rest/v1/items", json!({"id": 1, "name": "before"}), "").await;
    let out = migrate(&audited);
    assert!(out.contains("audit changes to items"), "{out}");
    let (s, _) = app.post("/rest/v1/items", json!({"id": 2, "name": "audited"}), "").await;
    assert_eq!(s, 201);
    let log = entries(&app, "").await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!((log[0]["row_id"].as_str(), log[0]["actor_role"].as_str()), (Some("2"), Some("service_role")));
    let out = migrate(PLAIN);
    assert!(out.contains("stop auditing items"), "{out}");
    app.post("/rest/v1/items", json!({"id": 3, "name": "after"}), "").await;
    assert_eq!(entries(&app, "").await.len(), 1);
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

crate::both_backends!(
    records_every_change,
    auth_events,
    link_and_admin_events,
    forwarded_client_address,
    composite_keys,
    a_cut_tail_is_detected,
    turned_on_and_off_by_migration,
    concurrent_writes_chain
);
