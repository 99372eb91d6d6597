//! Drop-in for PostgREST: its layout (the API at the root, no apikey gate), its JWT settings,
//! transaction modes and `Server-Timing` on both backends; on PostgreSQL a fixture database in
//! PostgREST's style (custom roles, two exposed schemas, a pre-request function, app settings,
//! response headers set from SQL).

use serde_json::{json, Value};

use crate::auth::{sign, sign_key};
use crate::helpers::{admin_sql, send, send_and_hang_up, with_db, Backend, TestApp, SECRET};

const NOTES: &str = r#"
[tables.notes]
columns.id   = { type = "bigint", primary_key = true }
columns.body = { type = "text" }
policies = [
  { name = "everyone reads", command = "select", roles = ["anon", "authenticated"], using = "true" },
  { name = "users write", command = "all", roles = ["authenticated"], using = "true" },
]
"#;

fn far() -> u64 {
    4_000_000_000
}

/// PostgREST's layout and settings that work on either backend.
async fn postgrest_layout(b: Backend) {
    let env = [
        ("BASALT_REST_MOUNT", "/"),
        ("BASALT_DB_TX_END", "commit-allow-override"),
        ("BASALT_SERVER_TIMING_ENABLED", "true"),
        ("PGRST_JWT_AUD", "my-app"),
        ("BASALT_JWT_ROLE_CLAIM_KEY", ".\"https://example.com/claims\".role"),
        ("BASALT_AUTH_AUTOCONFIRM", "true"),
    ];
    let Some(app) = TestApp::spawn_with(b, NOTES, &env).await else { return };
    let c = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.url);
    let user = sign(
        &json!({"https://example.com/claims": {"role": "authenticated"}, "sub": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "aud": "my-app", "exp": far()}),
        SECRET,
    );
    let bearer = format!("Bearer {user}");

    // The API is at the root and needs no apikey; no token means the anon role.
    let res = c.post(url("/notes")).header("authorization", &bearer).json(&json!({"id": 1, "body": "kept"})).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let timing = res.headers()["server-timing"].to_str().unwrap().to_string();
    assert!(
        timing.starts_with("jwt;dur=") && timing.contains("transaction;dur=") && timing.ends_with(|c: char| c.is_ascii_digit()),
        "{timing}"
    );
    let (s, rows) = send(c.get(url("/notes?select=body"))).await;
    assert_eq!((s, rows), (200, json!([{"body": "kept"}])), "anonymous read at the root");
    let (s, e) = send(c.post(url("/notes")).json(&json!({"id": 9}))).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("42501")), "anon cannot write");
    let (s, doc) = send(c.get(url("/")).header("authorization", format!("Bearer {}", app.service))).await;
    assert_eq!((s, doc["basePath"].as_str()), (200, Some("/")));
    assert!(doc["paths"]["/notes"].is_object());
    let (s, e) = send(c.post(url("/"))).await;
    assert_eq!((s, e["code"].as_str()), (405, Some("PGRST117")));
    let (s, e) = send(c.put(url("/rpc/anything"))).await;
    assert_eq!((s, e["code"].as_str()), (405, Some("PGRST101")));
    assert_eq!(c.get(url("/rest/v1/notes")).send().await.unwrap().status(), 404, "not at /rest/v1 any more");

    // Prefer: tx=rollback answers as usual, leaves nothing, and says so.
    let res = c
        .post(url("/notes?select=id"))
        .header("authorization", &bearer)
        .header("prefer", "tx=rollback, return=representation")
        .json(&json!({"id": 2, "body": "gone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["preference-applied"], "return=representation, tx=rollback");
    assert_eq!(res.json::<Value>().await.unwrap(), json!([{"id": 2}]));
    let res = c
        .patch(url("/notes?id=eq.1"))
        .header("authorization", &bearer)
        .header("prefer", "tx=rollback")
        .json(&json!({"body": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, rows) = send(c.get(url("/notes?select=id,body"))).await;
    assert_eq!(rows, json!([{"id": 1, "body": "kept"}]), "rolled back writes leave no trace");
    let res =
        c.post(url("/notes")).header("authorization", &bearer).header("prefer", "tx=commit").json(&json!({"id": 3})).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["preference-applied"].to_str().unwrap()), (201, "tx=commit"));
    let (s, e) = send(c.get(url("/notes")).header("prefer", "handling=strict, nonsense")).await;
    assert_eq!((s, e["code"].as_str(), e["details"].as_str()), (400, Some("PGRST122"), Some("Invalid preferences: nonsense")));

    // JWT settings: the audience is checked; the role is read at the claim key.
    let other_aud = sign(&json!({"https://example.com/claims": {"role": "authenticated"}, "aud": "else", "exp": far()}), SECRET);
    let (s, e) = send(c.get(url("/notes")).header("authorization", format!("Bearer {other_aud}"))).await;
    assert_eq!((s, e["code"].as_str(), e["message"].as_str()), (401, Some("PGRST303"), Some("JWT not in audience")));
    let no_role = sign(&json!({"sub": "someone", "aud": ["x", "my-app"]}), SECRET);
    let (s, e) = send(c.post(url("/notes")).header("authorization", format!("Bearer {no_role}")).json(&json!({"id": 4}))).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("42501")), "no role in the token: the anon role (and no exp is fine)");
    let plain = sign(&json!({"role": "authenticated", "exp": far()}), SECRET);
    let (s, _) = send(c.post(url("/notes")).header("authorization", format!("Bearer {plain}")).json(&json!({"id": 5}))).await;
    assert_eq!(s, 201, "Supabase-style tokens (the role at .role) still work");
    let (s, e) = send(c.get(url("/notes")).header("authorization", "Bearer ")).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("PGRST301")));
    // Basalt's own sessions carry the configured audience, so they pass its check.
    let (session, _, _) = app.signup("aud@example.com", json!({})).await;
    let (s, _) = send(c.post(url("/notes")).header("authorization", format!("Bearer {session}")).json(&json!({"id": 6}))).await;
    assert_eq!(s, 201, "a signed-in user's token has aud = jwt_aud");
}

/// On SQLite a read that runs past `statement_timeout_ms` is interrupted: 500 57014, as PostgreSQL.
#[tokio::test]
async fn sqlite_statement_timeout() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, NOTES, &[("BASALT_STATEMENT_TIMEOUT_MS", "1")]).await else { return };
    let rows: Vec<Value> = (0..20_000).map(|i| json!({"id": i, "body": format!("note number {i} with some text")})).collect();
    let (s, _) = app.post("/rest/v1/notes", Value::Array(rows), "").await;
    assert_eq!(s, 201, "writes are not interrupted");
    // A regular expression over every row, then an ordering of all of them: far more than 1 ms.
    let (s, e) = app.get("/rest/v1/notes?body=match.^note.*(1|2|3).*text$&order=body.desc&limit=5").await;
    assert_eq!((s, e["code"].as_str()), (500, Some("57014")), "{e}");
    let (s, rows) = app.get("/rest/v1/notes?id=eq.7&select=id").await;
    assert_eq!((s, rows), (200, json!([{"id": 7}])), "short reads still answer");
}

/// `jwt_secret_is_base64`, and `db-anon-role` unset refusing anonymous requests.
async fn base64_secret_and_no_anon(b: Backend) {
    let key: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&key);
    let env = [
        ("BASALT_JWT_SECRET", encoded.as_str()),
        ("BASALT_JWT_SECRET_IS_BASE64", "true"),
        ("BASALT_REST_MOUNT", "/api"),
        ("BASALT_REST_REQUIRE_APIKEY", "false"),
        ("BASALT_DB_ANON_ROLE", ""),
    ];
    let Some(app) = TestApp::spawn_with(b, NOTES, &env).await else { return };
    let c = reqwest::Client::new();
    let token = sign_key(&json!({"role": "authenticated", "exp": far()}), &key);
    let (s, _) =
        send(c.post(format!("{}/api/notes", app.url)).header("authorization", format!("Bearer {token}")).json(&json!({"id": 1}))).await;
    assert_eq!(s, 201, "a token signed with the decoded key is accepted");
    let (s, rows) = send(
        c.get(format!("{}/api/notes?select=id", app.url))
            .header("apikey", &app.service)
            .header("authorization", format!("Bearer {}", app.service)),
    )
    .await;
    assert_eq!((s, rows), (200, json!([{"id": 1}])), "the printed keys are signed with it too");
    let (s, e) = send(c.get(format!("{}/api/notes", app.url))).await;
    assert_eq!((s, e["code"].as_str(), e["message"].as_str()), (401, Some("PGRST302"), Some("Anonymous access is disabled")));
    let (s, _) = send(
        c.get(format!("{}/api/notes", app.url))
            .header("authorization", format!("Bearer {}", sign(&json!({"role": "authenticated"}), SECRET))),
    )
    .await;
    assert_eq!(s, 401, "the text of the base64 secret is not the key");
}

crate::both_backends!(postgrest_layout, base64_secret_and_no_anon);

/// A database set up for PostgREST: roles of its own, schemas `api` and `v2`, a pre-request
/// function, app settings read in SQL, and functions that set response headers.
const FIXTURE: &str = r#"
DO $$ BEGIN CREATE ROLE pgrst_web_anon NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE pgrst_web_user NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE pgrst_outsider NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
create schema api;
create schema v2;
grant usage on schema api, v2 to pgrst_web_anon, pgrst_web_user;
create table api.todos (id int primary key, task text not null, done boolean not null default false);
insert into api.todos select g, 'task ' || g, g % 2 = 0 from generate_series(1, 30) g;
grant select on api.todos to pgrst_web_anon;
grant select, insert, update, delete on api.todos to pgrst_web_user;
create table v2.todos (id int primary key, title text);
insert into v2.todos values (1, 'from v2');
grant select, insert on v2.todos to pgrst_web_anon, pgrst_web_user;
create function api.setting(name text) returns text language sql stable as $$ select current_setting('app.settings.' || name, true) $$;
create function api.whoami() returns json language sql stable as $$
  select json_build_object('user', current_user, 'path', current_setting('search_path'), 'claims', current_setting('request.jwt.claims', true)::json)
$$;
create function api.cached() returns text language plpgsql as $$
begin
  perform set_config('response.headers', '[{"Cache-Control": "public, max-age=60"}, {"X-Answer": "42"}]', true);
  perform set_config('response.status', '202', true);
  return 'ok';
end $$;
create function api.bad_headers() returns text language plpgsql as $$
begin perform set_config('response.headers', '{"not": "an array"}', true); return 'x'; end $$;
create function api.teapot() returns void language plpgsql as $$
begin
  raise sqlstate 'PGRST' using message = '{"code": "TEA01", "message": "I am a teapot", "hint": "brew"}', detail = '{"status": 418, "headers": {"X-Pot": "1"}}';
end $$;
create function api.check_request() returns void language plpgsql as $$
declare claims json := current_setting('request.jwt.claims', true)::json;
begin
  if current_setting('request.headers', true)::json ->> 'x-blocked' = 'yes' then
    raise sqlstate 'PT402' using message = 'Payment Required';
  end if;
  if claims ->> 'level' = 'editor' then
    perform set_config('role', 'pgrst_web_user', true);
  end if;
  perform set_config('response.headers', '[{"X-Pre-Request": "ran"}]', true);
end $$;
create function api.touch() returns int language sql volatile as $$ insert into api.todos values (1000, 'written by a read') returning id $$;
create view api.touchy as select api.touch() as n;
create function api.fail(code text) returns void language plpgsql as $$
begin raise exception using errcode = code, message = 'failed with ' || code, hint = 'try again'; end $$;
create function api.slow() returns int language sql as $$ select 1 from pg_sleep(2) $$;
grant select on api.touchy to pgrst_web_anon;
grant insert on api.todos to pgrst_web_anon;
"#;

#[tokio::test]
async fn postgrest_fixture_database() {
    let Some(holder) = TestApp::spawn_with(Backend::Postgres, "", &[]).await else { return };
    let url = holder.database_url.clone().expect("postgres");
    let db_url = url.clone();
    let admin = crate::helpers::pg_admin_url().expect("admin url");
    let db = url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_string();
    admin_sql(&with_db(&admin, &db), FIXTURE);
    let env = [
        ("BASALT_SCHEMA_SOURCE", "postgres"),
        ("PGRST_DB_SCHEMAS", "api, v2"),
        ("PGRST_DB_ANON_ROLE", "pgrst_web_anon"),
        ("BASALT_REST_MOUNT", "/"),
        ("PGRST_DB_PRE_REQUEST", "api.check_request"),
        ("PGRST_APP_SETTINGS_GREETING", "hello"),
        ("BASALT_DB_MAX_ROWS", "25"),
        ("BASALT_DB_TX_END", "rollback-allow-override"),
    ];
    let app = TestApp::spawn_on(&url, "", &env).await;
    let c = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.url);

    // The anon role of the database, the default schema, the pre-request's header, max rows.
    let res = c.get(url("/todos?select=id&order=id")).header("prefer", "count=exact").send().await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "0-24/30");
    assert_eq!(res.headers().get("content-profile").map(|v| v.to_str().unwrap()), Some("api"), "two schemas exposed: {:?}", res.headers());
    assert_eq!(res.headers()["x-pre-request"], "ran");
    assert!(res.headers().get("range-unit").is_none());
    assert_eq!(res.json::<Value>().await.unwrap().as_array().map(Vec::len), Some(25));
    let res = c.get(url("/todos?done=eq.true")).header("prefer", "count=planned").send().await.unwrap();
    let range = res.headers()["content-range"].to_str().unwrap().to_string();
    let planned: i64 = range.rsplit('/').next().unwrap().parse().unwrap_or(-1);
    assert!(planned > 0, "a planner estimate: {range}");
    let res = c.get(url("/todos?id=lt.4")).header("prefer", "count=estimated").send().await.unwrap();
    assert_eq!(res.headers()["content-range"], "0-2/3", "estimated is exact below max rows");

    // The second schema by Accept-Profile / Content-Profile; unknown ones refused.
    let res = c.get(url("/todos")).header("accept-profile", "v2").send().await.unwrap();
    let headers = res.headers().clone();
    assert_eq!(headers.get("content-profile").map(|v| v.to_str().unwrap()), Some("v2"), "{}", res.text().await.unwrap());
    let res = c.get(url("/todos")).header("accept-profile", "v2").send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!([{"id": 1, "title": "from v2"}]));
    let res = c
        .post(url("/todos"))
        .header("content-profile", "v2")
        .header("prefer", "return=representation, tx=commit")
        .json(&json!({"id": 2, "title": "posted"}))
        .send()
        .await
        .unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["content-profile"].to_str().unwrap()), (201, "v2"));
    let (s, e) = send(c.get(url("/todos")).header("accept-profile", "private")).await;
    assert_eq!(
        (s, e["code"].as_str(), e["message"].as_str(), e["hint"].as_str()),
        (406, Some("PGRST106"), Some("Invalid schema: private"), Some("Only the following schemas are exposed: api, v2"))
    );

    // db-tx-end = rollback-allow-override: writes roll back unless tx=commit is asked for.
    let res = c.post(url("/todos")).header("content-profile", "v2").json(&json!({"id": 3, "title": "rolled back"})).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let (_, rows) = send(c.get(url("/todos?select=id&order=id")).header("accept-profile", "v2")).await;
    assert_eq!(rows, json!([{"id": 1}, {"id": 2}]));

    // Functions see the role, claims, search path and app settings PostgREST would set.
    let (s, v) = send(c.get(url("/rpc/setting?name=greeting"))).await;
    assert_eq!((s, v), (200, json!("hello")));
    let (_, v) = send(c.get(url("/rpc/whoami"))).await;
    assert_eq!(v["user"], "pgrst_web_anon");
    assert_eq!(v["claims"], json!({"role": "pgrst_web_anon"}));
    assert!(v["path"].as_str().unwrap_or_default().starts_with("\"api\""), "{v}");
    let (s, e) = send(c.get(url("/rpc/whoami")).header("accept-profile", "v2")).await;
    assert_eq!((s, e["message"].as_str()), (404, Some("Could not find the function v2.whoami without parameters in the schema cache")));
    // The pre-request function switches role from a claim; it can also refuse the request.
    let editor = sign(&json!({"role": "pgrst_web_anon", "level": "editor", "exp": far()}), SECRET);
    let (_, v) = send(c.get(url("/rpc/whoami")).header("authorization", format!("Bearer {editor}"))).await;
    assert_eq!(v["user"], "pgrst_web_user");
    let res = c
        .patch(url("/todos?id=eq.1"))
        .header("authorization", format!("Bearer {editor}"))
        .header("prefer", "tx=commit")
        .json(&json!({"task": "edited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, rows) = send(c.get(url("/todos?id=eq.1&select=task"))).await;
    assert_eq!(rows, json!([{"task": "edited"}]));
    let (s, e) = send(c.patch(url("/todos?id=eq.1")).json(&json!({"task": "anon"}))).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("42501")), "the anon role may not update");
    let (s, e) = send(c.get(url("/todos")).header("x-blocked", "yes")).await;
    assert_eq!((s, e["code"].as_str(), e["message"].as_str()), (402, Some("PT402"), Some("Payment Required")));

    // Errors the database raises keep their code, message and hint, with PostgREST's status,
    // but for those about the server itself.
    for (code, status) in [("40001", 500), ("55P03", 500), ("P0002", 500), ("54001", 413), ("57P01", 503), ("22023", 400)] {
        let (s, e) = send(c.post(url("/rpc/fail")).json(&json!({"code": code}))).await;
        let expected = format!("failed with {code}");
        assert_eq!(
            (s, e["code"].as_str(), e["message"].as_str(), e["hint"].as_str()),
            (status, Some(code), Some(expected.as_str()), Some("try again")),
            "{e}"
        );
    }
    for code in ["XX000", "58030", "F0000"] {
        let (s, e) = send(c.post(url("/rpc/fail")).json(&json!({"code": code}))).await;
        assert_eq!((s, e["code"].as_str(), e["message"].as_str()), (500, Some("XX000"), Some("Internal server error")), "{code}: {e}");
    }

    // Response headers and status from SQL; malformed ones are an error; PGRST errors from SQL.
    let res = c.post(url("/rpc/cached")).header("prefer", "tx=commit").json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    assert_eq!(res.headers()["x-answer"], "42");
    let (s, e) = send(c.post(url("/rpc/bad_headers")).json(&json!({}))).await;
    assert_eq!((s, e["code"].as_str()), (500, Some("PGRST111")));
    let res = c.post(url("/rpc/teapot")).json(&json!({})).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["x-pot"].to_str().unwrap()), (418, "1"));
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"code": "TEA01", "message": "I am a teapot", "hint": "brew", "details": null}));

    // Roles: a token may not name a superuser or a role that does not exist.
    for role in ["postgres", "no_such_role_here"] {
        let t = sign(&json!({"role": role, "exp": far()}), SECRET);
        let (s, e) = send(c.get(url("/todos")).header("authorization", format!("Bearer {t}"))).await;
        assert_eq!((s, e["code"].as_str()), (401, Some("PGRST303")), "{role}");
    }
    // PostgREST's not-found hints, qualified with the schema.
    let (s, e) = send(c.get(url("/todo"))).await;
    assert_eq!(
        (s, e["message"].as_str(), e["hint"].as_str()),
        (404, Some("Could not find the table 'api.todo' in the schema cache"), Some("Perhaps you meant the table 'api.todos'"))
    );
    let (s, e) = send(c.post(url("/rpc/nothing")).json(&json!({}))).await;
    assert_eq!((s, e["message"].as_str()), (404, Some("Could not find the function api.nothing without parameters in the schema cache")));

    // Without a pre-request function, a plain read runs without an explicit transaction: it
    // still may not write, and each caller keeps its own role on the one connection.
    let plain = [("BASALT_POOL_SIZE", "1"), ("PGRST_DB_POOL_ACQUISITION_TIMEOUT", "1"), env[0], env[1], env[2], env[3]];
    let app2 = TestApp::spawn_on(&db_url, "", &plain).await;
    let url2 = |p: &str| format!("{}{p}", app2.url);
    let (s, e) = send(c.get(url2("/touchy"))).await;
    assert_eq!((s, e["code"].as_str()), (405, Some("25006")), "{e}");
    let (s, rows) = send(c.get(url2("/todos?id=eq.1000"))).await;
    assert_eq!((s, rows), (200, json!([])), "the read wrote nothing");
    let user = sign(&json!({"role": "pgrst_web_user", "exp": far()}), SECRET);
    for _ in 0..3 {
        let (s, w) = send(c.get(url2("/rpc/whoami")).header("authorization", format!("Bearer {user}"))).await;
        assert_eq!((s, w["user"].as_str()), (200, Some("pgrst_web_user")));
        let (s, w) = send(c.get(url2("/rpc/whoami"))).await;
        assert_eq!((s, w["user"].as_str()), (200, Some("pgrst_web_anon")));
        let (s, w) = send(c.get(url2("/todos?select=id&id=eq.1"))).await;
        assert_eq!((s, w), (200, json!([{"id": 1}])));
    }

    // A role without access to the schema leaves itself behind as the session's role; the next
    // caller's statement, new to the connection, is still prepared (as the connecting role) and runs.
    let outsider = sign(&json!({"role": "pgrst_outsider", "exp": far()}), SECRET);
    let (s, e) = send(c.get(url2("/todos?select=id&id=eq.2")).header("authorization", format!("Bearer {outsider}"))).await;
    // Refused: its search path does not reach `api` (PostgREST, which qualifies names, says 42501).
    assert!(matches!(s, 403 | 404), "no access to schema api: {s} {e}");
    let (s, w) = send(c.get(url2("/todos?select=task&id=eq.3"))).await;
    assert_eq!((s, w), (200, json!([{"task": "task 3"}])));

    // The one connection busy for 2 s, a request waits 1 s for it (db-pool-acquisition-timeout)
    // and gets 504 PGRST003; the busy one finishes.
    let busy = tokio::spawn({
        let (c, u) = (c.clone(), url2("/rpc/slow"));
        async move { send(c.get(u)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let (s, e) = send(c.get(url2("/todos?select=id&id=eq.1"))).await;
    assert_eq!((s, e["code"].as_str()), (504, Some("PGRST003")), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_millis(1900), "{:?}", started.elapsed());
    assert_eq!(busy.await.expect("join"), (200, json!(1)));
    drop(holder);
}

/// A function call whose caller hangs up mid-call still ends its transaction the way the request
/// asked (here: rolled back), instead of leaving the pooled connection inside it for the next
/// caller's COMMIT to commit; the connection is brought back, not replaced. One that PostgreSQL
/// closes while it sits in the pool is replaced before a caller gets it.
#[tokio::test]
async fn rpc_hang_ups_roll_back() {
    let Some(holder) = TestApp::spawn_with(Backend::Postgres, "", &[]).await else { return };
    let url = holder.database_url.clone().expect("postgres");
    let admin = crate::helpers::pg_admin_url().expect("admin url");
    let db = url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_string();
    admin_sql(
        &with_db(&admin, &db),
        r#"
DO $$ BEGIN CREATE ROLE pgrst_web_anon NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
create schema api;
grant usage on schema api to pgrst_web_anon;
create table api.calls (id bigint generated always as identity primary key, note text not null);
grant select, insert on api.calls to pgrst_web_anon;
create function api.log_call() returns int language plpgsql as $$
begin insert into api.calls (note) values ('call'); perform pg_sleep(0.02); return 1; end $$;
create function api.backend() returns int language sql as $$ select pg_backend_pid() $$;
"#,
    );
    let env = [
        ("BASALT_SCHEMA_SOURCE", "postgres"),
        ("PGRST_DB_SCHEMAS", "api"),
        ("PGRST_DB_ANON_ROLE", "pgrst_web_anon"),
        ("BASALT_REST_MOUNT", "/"),
        ("BASALT_DB_TX_END", "rollback-allow-override"),
        ("BASALT_POOL_SIZE", "1"),
    ];
    let app = TestApp::spawn_on(&url, "", &env).await;
    let (s, v) = send(app.client.post(format!("{}/rpc/log_call", app.url)).json(&serde_json::json!({}))).await;
    assert_eq!((s, v), (200, serde_json::json!(1)), "a call answers, and its insert is rolled back");
    let backend = || async { send(app.client.get(format!("{}/rpc/backend", app.url))).await };
    let (s, before) = backend().await;
    assert_eq!(s, 200, "{before}");
    let host = app.host();
    let request = format!("POST /rpc/log_call HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}");
    let mut hung = Vec::new();
    for i in 0..40u64 {
        let (host, request) = (host.clone(), request.clone());
        let after = std::time::Duration::from_micros(500 + i * 997 % 8000);
        hung.push(tokio::spawn(async move { send_and_hang_up(&host, &request, after).await }));
    }
    for h in hung {
        h.await.expect("hang-up task");
    }
    // A committed write after them: it would also commit a call left open on the connection.
    let (s, _) =
        send(app.client.post(format!("{}/calls", app.url)).header("prefer", "tx=commit").json(&serde_json::json!({"note": "kept"}))).await;
    assert_eq!(s, 201);
    let (s, rows) = send(app.client.get(format!("{}/calls?select=note&order=id", app.url))).await;
    assert_eq!((s, rows), (200, serde_json::json!([{"note": "kept"}])), "only the committed row");
    // The one connection was brought back each time, not replaced by a new one.
    assert_eq!(backend().await, (200, before.clone()), "the same PostgreSQL backend serves after the hang-ups");

    // A pooled connection PostgreSQL closed meanwhile is replaced, not handed to the next caller.
    admin_sql(&with_db(&admin, &db), &format!("SELECT pg_terminate_backend({before})"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, after) = backend().await;
    assert_eq!(s, 200, "{after}");
    assert_ne!(after, before, "a new backend");
}
