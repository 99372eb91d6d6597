//! Row-level security: the same matrix of tables x commands x callers on both backends
//! (SQLite compiles policies into each query; PostgreSQL enforces native CREATE POLICY).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, send_and_hang_up, Backend, TestApp};

const SCHEMA: &str = r#"
[tables.notes]
owner = "user_id"
columns.id        = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.user_id   = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id", on_delete = "cascade" }
columns.body      = { type = "text" }
columns.is_public = { type = "boolean", default = "false" }

[[tables.notes.policies]]
name = "anyone reads public notes"
command = "select"
roles = ["anon", "authenticated"]
using = "is_public = true"

[tables.projects]
columns.id       = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.owner_id = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users", on_delete = "cascade" }
columns.name     = { type = "text", not_null = true }

[[tables.projects.policies]]
name = "owners manage their projects"
command = "all"
roles = ["authenticated"]
using = "owner_id = auth.uid()"

[tables.tasks]
columns.id         = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.project_id = { type = "uuid", not_null = true, references = "projects.id", on_delete = "cascade" }
columns.title      = { type = "text" }

[[tables.tasks.policies]]
name = "tasks through their project"
command = "all"
roles = ["authenticated"]
using = "exists (select 1 from projects where projects.id = tasks.project_id and projects.owner_id = auth.uid())"

[tables.feedback]
columns.id   = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.body = { type = "text", not_null = true }

[[tables.feedback.policies]]
name = "anyone may leave feedback"
command = "insert"
roles = ["anon", "authenticated"]
with_check = "true"

[tables.profiles]
columns.id    = { type = "uuid", primary_key = true, references = "auth.users.id", on_delete = "cascade" }
columns.email = { type = "text" }
columns.name  = { type = "text" }
on_signup = { id = "id", email = "email", name = "user_metadata.name" }

[[tables.profiles.policies]]
name = "read own profile"
command = "select"
roles = ["authenticated"]
using = "id = auth.uid()"

[[tables.profiles.policies]]
name = "update own profile"
command = "update"
roles = ["authenticated"]
using = "id = auth.uid()"
with_check = "id = auth.uid() and name is not null"
"#;

async fn count(app: &TestApp, table: &str, token: Option<&str>) -> usize {
    let (s, rows) = send(app.as_user(Method::GET, &format!("/rest/v1/{table}?select=*"), token)).await;
    assert_eq!(s, 200, "{table}: {rows}");
    rows.as_array().map(Vec::len).unwrap_or(usize::MAX)
}

async fn write(app: &TestApp, m: Method, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    send(app.as_user(m, path, token).header("prefer", "return=representation").json(&body)).await
}

async fn matrix(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (a, _, a_id) = app.signup("a@example.com", json!({"name": "A"})).await;
    let (bt, _, b_id) = app.signup("b@example.com", json!({"name": "B"})).await;
    let (a, bt) = (Some(a.as_str()), Some(bt.as_str()));
    // Rows made by the service role on behalf of each user.
    let (s, _) = app.post("/rest/v1/notes", json!([
        {"user_id": a_id, "body": "a-private"}, {"user_id": a_id, "body": "a-public", "is_public": true}, {"user_id": b_id, "body": "b-private"}
    ]), "").await;
    assert_eq!(s, 201);
    let (_, p) = app
        .post(
            "/rest/v1/projects?select=id",
            json!([{"owner_id": a_id, "name": "pa"}, {"owner_id": b_id, "name": "pb"}]),
            "return=representation",
        )
        .await;
    let (pa, pb) = (p[0]["id"].as_str().expect("id").to_string(), p[1]["id"].as_str().expect("id").to_string());
    app.post("/rest/v1/tasks", json!([{"project_id": pa, "title": "ta"}, {"project_id": pb, "title": "tb"}]), "").await;

    // SELECT: who sees how many rows.
    for (table, want) in [("notes", [1, 2, 2, 3]), ("projects", [0, 1, 1, 2]), ("tasks", [0, 1, 1, 2]), ("profiles", [0, 1, 1, 2])] {
        let got = [
            count(&app, table, None).await,
            count(&app, table, a).await,
            count(&app, table, bt).await,
            app.get(&format!("/rest/v1/{table}")).await.1.as_array().map_or(0, Vec::len),
        ];
        assert_eq!(got, want, "select on {table} as [anon, A, B, service]");
    }
    // Embeds respect the child's policies too.
    let (_, rows) = send(app.as_user(Method::GET, "/rest/v1/projects?select=name,tasks(title)", a)).await;
    assert_eq!(rows, json!([{"name": "pa", "tasks": [{"title": "ta"}]}]));

    // INSERT
    let (s, e) = write(&app, Method::POST, "/rest/v1/notes", None, json!({"body": "anon"})).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("42501")));
    let (s, rows) = write(&app, Method::POST, "/rest/v1/notes?select=body,user_id", a, json!({"body": "mine"})).await;
    assert_eq!((s, rows), (201, json!([{"body": "mine", "user_id": a_id}])), "user_id defaults to auth.uid()");
    let (s, e) = write(&app, Method::POST, "/rest/v1/notes", a, json!({"body": "forged", "user_id": b_id})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")));
    let (s, _) = write(&app, Method::POST, "/rest/v1/tasks", a, json!({"project_id": pa, "title": "ok"})).await;
    assert_eq!(s, 201);
    let (s, e) = write(&app, Method::POST, "/rest/v1/tasks", a, json!({"project_id": pb, "title": "intrude"})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "a task in someone else's project");
    let (s, _) = write(&app, Method::POST, "/rest/v1/profiles", a, json!({"id": a_id})).await;
    assert_eq!(s, 403, "no insert policy on profiles");

    // UPDATE: hidden rows are simply not matched; WITH CHECK guards the new values.
    let (s, rows) = write(&app, Method::PATCH, "/rest/v1/notes?body=eq.b-private", a, json!({"body": "hacked"})).await;
    assert_eq!((s, rows), (200, json!([])));
    let (s, rows) = write(&app, Method::PATCH, "/rest/v1/notes?body=eq.a-private&select=body", a, json!({"body": "edited"})).await;
    assert_eq!((s, rows), (200, json!([{"body": "edited"}])));
    let (s, e) = write(&app, Method::PATCH, "/rest/v1/notes?body=eq.edited", a, json!({"user_id": b_id})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "cannot hand a row to someone else");
    let (s, e) = write(&app, Method::PATCH, &format!("/rest/v1/profiles?id=eq.{a_id}"), a, json!({"name": null})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "with_check");
    let (s, rows) = write(&app, Method::PATCH, "/rest/v1/profiles?name=like.*&select=name", a, json!({"name": "Ann"})).await;
    assert_eq!((s, rows), (200, json!([{"name": "Ann"}])), "only the own profile is updated");
    let (s, rows) = write(&app, Method::PATCH, "/rest/v1/notes", None, json!({"body": "anon"})).await;
    assert_eq!(s, 400, "anon may not update without a filter: {rows}");

    // Upserts may not overwrite rows the UPDATE policy hides.
    let (_, hidden) = app.get("/rest/v1/notes?select=id&body=eq.b-private").await;
    let b_note = hidden[0]["id"].clone();
    let (s, e) = send(
        app.as_user(Method::POST, "/rest/v1/notes", a)
            .header("prefer", "resolution=merge-duplicates")
            .json(&json!({"id": b_note, "body": "taken"})),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "upsert over another user's row");
    let (_, rows) = app.get("/rest/v1/notes?select=body&body=eq.b-private").await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    // Counts of embedded rows follow the child's policies.
    let (_, rows) = send(app.as_user(Method::GET, "/rest/v1/projects?select=name,tasks(count)", bt)).await;
    assert_eq!(rows, json!([{"name": "pb", "tasks": [{"count": 1}]}]));
    // A write-only table: anyone may insert (minimal return), nobody but the service role reads.
    let (s, _) = send(app.as_user(Method::POST, "/rest/v1/feedback", None).json(&json!({"body": "great"}))).await;
    assert_eq!(s, 201);
    assert_eq!(count(&app, "feedback", a).await, 0);
    let (s, e) = write(&app, Method::POST, "/rest/v1/feedback", a, json!({"body": "with body back"})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "representation needs a select policy");

    // DELETE
    let (s, rows) = write(&app, Method::DELETE, "/rest/v1/notes?body=eq.a-public", bt, json!({})).await;
    assert_eq!((s, rows), (200, json!([])), "visible but not deletable by B");
    let (s, rows) = write(&app, Method::DELETE, "/rest/v1/tasks?select=title", bt, json!({})).await;
    assert_eq!(s, 400, "B may not delete without a filter: {rows}");
    let (s, rows) = write(&app, Method::DELETE, "/rest/v1/tasks?title=neq.none&select=title", bt, json!({})).await;
    assert_eq!((s, rows), (200, json!([{"title": "tb"}])));

    // Deleting a user removes their rows everywhere.
    let (s, _) = send(app.req(Method::DELETE, &format!("/auth/v1/admin/users/{a_id}"))).await;
    assert_eq!(s, 200);
    for (table, left) in [("notes", 1), ("projects", 1), ("tasks", 0), ("profiles", 1), ("feedback", 1)] {
        let (_, rows) = app.get(&format!("/rest/v1/{table}")).await;
        assert_eq!(rows.as_array().map(Vec::len), Some(left), "{table} after deleting A: {rows}");
    }
}

crate::both_backends!(matrix);

const BALLOTS: &str = r#"
[tables.ballots]
columns.id     = { type = "bigint", primary_key = true }
columns.choice = { type = "text" }

[[tables.ballots.policies]]
name = "anyone votes"
command = "insert"
roles = ["anon"]
with_check = "true"

[[tables.ballots.policies]]
name = "anyone changes a vote"
command = "update"
roles = ["anon"]
using = "true"

[[tables.ballots.policies]]
name = "anyone withdraws one"
command = "delete"
roles = ["anon"]
using = "true"
"#;

/// Without a SELECT policy, rows stay out of reach of UPDATE and DELETE too, as in PostgreSQL
/// (a `WHERE` reads rows, so SELECT policies apply to it); an insert that returns nothing works.
async fn writes_need_a_select_policy_to_find_rows(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, BALLOTS, &[]).await else { return };
    let anon = |method: Method, path: &str| app.as_user(method, path, None).header("prefer", "return=minimal");
    let (s, e) = send(anon(Method::POST, "/rest/v1/ballots").json(&json!({"id": 1, "choice": "a"}))).await;
    assert_eq!(s, 201, "{e}");
    let (s, e) = send(anon(Method::PATCH, "/rest/v1/ballots?id=eq.1").json(&json!({"choice": "b"}))).await;
    assert_eq!(s, 204, "{e}");
    let (s, e) = send(anon(Method::DELETE, "/rest/v1/ballots?id=eq.1")).await;
    assert_eq!(s, 204, "{e}");
    assert_eq!(app.get("/rest/v1/ballots?select=id,choice").await, (200, json!([{"id": 1, "choice": "a"}])), "unchanged, still there");
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/ballots", None)).await;
    assert_eq!((s, rows), (200, json!([])));
}

crate::both_backends!(writes_need_a_select_policy_to_find_rows);

/// With one database connection, callers take turns on it: each request's role and claims are its
/// own, never the previous caller's (PostgreSQL runs plain reads without an explicit
/// transaction, the context and the statement as one implicit one), and reads stay read-only.
async fn one_connection(b: Backend) {
    take_turns(b, "false").await;
    // Behind a transaction-mode pooler every read keeps its own transaction: same answers.
    take_turns(b, "true").await;
}

async fn take_turns(b: Backend, transaction_pooler: &str) {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_POOL_SIZE", "1"), ("BASALT_TRANSACTION_POOLER", transaction_pooler)];
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &env).await else { return };
    let (a, _, _) = app.signup("a@example.com", json!({"name": "A"})).await;
    let (bt, _, _) = app.signup("b@example.com", json!({"name": "B"})).await;
    let (a, bt) = (Some(a.as_str()), Some(bt.as_str()));
    assert_eq!(write(&app, Method::POST, "/rest/v1/notes", a, json!({"body": "a-private"})).await.0, 201);
    assert_eq!(write(&app, Method::POST, "/rest/v1/notes", a, json!({"body": "a-public", "is_public": true})).await.0, 201);
    assert_eq!(write(&app, Method::POST, "/rest/v1/notes", bt, json!({"body": "b-private"})).await.0, 201);
    for _ in 0..3 {
        assert_eq!(count(&app, "notes", a).await, 2, "a sees own and public");
        assert_eq!(count(&app, "notes", None).await, 1, "anon after a sees only the public note");
        assert_eq!(count(&app, "notes", bt).await, 2, "b sees own and public");
        assert_eq!(count(&app, "projects", None).await, 0);
        let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/notes?select=body&body=eq.a-private", bt)).await;
        assert_eq!((s, rows), (200, json!([])), "b after a and anon: no trace of a's claims");
    }
    // A failed write on the same connection leaves nothing behind for the next caller.
    let (s, _) = write(&app, Method::POST, "/rest/v1/notes", bt, json!({"body": "x", "nope": 1})).await;
    assert_eq!(s, 400);
    assert_eq!(count(&app, "notes", bt).await, 2);
    assert_eq!(count(&app, "notes", a).await, 2);
}

crate::both_backends!(one_connection);

/// Callers that hang up mid-request leave the database connection as they found it. With one
/// connection, a few hundred requests are dropped at scattered points (waiting for the pool,
/// mid-read, mid-write, between a single-row write's count and its ROLLBACK); afterwards every
/// caller sees exactly their own rows, each hung-up insert landed whole or not at all, a
/// single-row write that reached two rows changed nothing, and (PostgreSQL) no connection is
/// left inside a transaction.
async fn hang_ups(b: Backend) {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_POOL_SIZE", "1")];
    let Some(app) = TestApp::spawn_with(b, SCHEMA, &env).await else { return };
    let (a, _, _) = app.signup("a@example.com", json!({"name": "A"})).await;
    let (bt, _, b_id) = app.signup("b@example.com", json!({"name": "B"})).await;
    for (token, body) in [(&a, json!({"body": "a-private"})), (&a, json!({"body": "a-public", "is_public": true}))] {
        assert_eq!(write(&app, Method::POST, "/rest/v1/notes", Some(token), body).await.0, 201);
    }
    for body in ["b-private", "b-second"] {
        assert_eq!(write(&app, Method::POST, "/rest/v1/notes", Some(&bt), json!({"body": body})).await.0, 201);
    }
    // A single-row write that reaches both of b's notes is refused and rolled back.
    let single = "application/vnd.pgrst.object+json";
    let patch = format!("/rest/v1/notes?user_id=eq.{b_id}");
    let (s, _) = send(app.as_user(Method::PATCH, &patch, Some(&bt)).header("accept", single).json(&json!({"body": "changed"}))).await;
    assert_eq!(s, 406);
    let host = app.host();
    let mut hung = Vec::new();
    for i in 0..400u64 {
        let (host, anon) = (host.clone(), app.anon.clone());
        let token = if i % 4 == 0 { a.clone() } else { bt.clone() };
        let (method, path, extra, body) = match i % 4 {
            0 | 1 => ("GET", "/rest/v1/notes?select=*".to_string(), String::new(), String::new()),
            2 => ("POST", "/rest/v1/notes".to_string(), String::new(), r#"{"body":"hung-up"}"#.to_string()),
            _ => ("PATCH", patch.clone(), format!("Accept: {single}\r\n"), r#"{"body":"changed"}"#.to_string()),
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\napikey: {anon}\r\nAuthorization: Bearer {token}\r\n{extra}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let after = std::time::Duration::from_micros(i * 173 % 3000);
        hung.push(tokio::spawn(async move { send_and_hang_up(&host, &request, after).await }));
    }
    for h in hung {
        h.await.expect("hang-up task");
    }
    // A write handed on before its caller hung up still runs: wait until b's rows stop changing.
    let (mut seen, mut steady) = (usize::MAX, 0);
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = count(&app, "notes", Some(&bt)).await;
        steady = if now == seen { steady + 1 } else { 0 };
        if steady == 2 {
            break;
        }
        seen = now;
    }
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/notes?select=body,user_id", Some(&bt))).await;
    assert_eq!(s, 200, "{rows}");
    let rows = rows.as_array().expect("rows");
    assert!(rows.iter().all(|r| r["user_id"] == json!(b_id) || r["body"] == json!("a-public")), "b sees only own and public: {rows:?}");
    assert!(rows.iter().all(|r| r["body"] != json!("changed")), "a refused single-row write left its change: {rows:?}");
    let landed = rows.iter().filter(|r| r["body"] == json!("hung-up")).count();
    assert_eq!(rows.len(), 3 + landed, "b's two notes, a-public and the inserts that landed: {rows:?}");
    for _ in 0..3 {
        assert_eq!(count(&app, "notes", Some(&a)).await, 2, "a sees own and public");
        assert_eq!(count(&app, "notes", None).await, 1, "anon sees only the public note");
        assert_eq!(count(&app, "notes", Some(&bt)).await, 3 + landed);
    }
    assert_eq!(write(&app, Method::POST, "/rest/v1/notes", Some(&a), json!({"body": "after"})).await.0, 201);
    assert_eq!(count(&app, "notes", Some(&a)).await, 3);
    if let Some(url) = &app.database_url {
        // Give the audit sealer's short transactions time to end, then look for any left open.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%' AND state_change < now() - interval '1 second'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        assert_eq!(open, 0, "connections left inside a transaction");
    }
}

crate::both_backends!(hang_ups);

const SCORES: &str = r#"
[tables.scores]
columns.id      = { type = "bigint", primary_key = true }
columns.user_id = { type = "uuid", not_null = true, default = "auth.uid()" }
columns.points  = { type = "integer" }

[[tables.scores.policies]]
name = "everyone sees scores"
command = "select"
roles = ["authenticated"]
using = "true"

[[tables.scores.policies]]
name = "a new score has ten points at most"
command = "insert"
roles = ["authenticated"]
with_check = "user_id = auth.uid() and points <= 10"

[[tables.scores.policies]]
name = "owners change their score to five at most"
command = "update"
roles = ["authenticated"]
using = "user_id = auth.uid()"
with_check = "points <= 5"

[tables.badges]
columns.id      = { type = "bigint", primary_key = true }
columns.visible = { type = "boolean" }

[[tables.badges.policies]]
name = "visible badges"
command = "select"
roles = ["authenticated"]
using = "visible = true"

[[tables.badges.policies]]
name = "anyone signed in adds badges"
command = "insert"
roles = ["authenticated"]
with_check = "true"

[[tables.badges.policies]]
name = "anyone signed in changes badges"
command = "update"
roles = ["authenticated"]
using = "true"
with_check = "true"
"#;

/// An upsert that overwrites a row is held to the UPDATE policy's WITH CHECK as well as to the
/// INSERT one, as PostgreSQL's `ON CONFLICT DO UPDATE` is.
async fn upserts_meet_the_update_check(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, SCORES, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, _, _) = app.signup("scorer@example.com", json!({})).await;
    let upsert = |points: i64| {
        app.as_user(Method::POST, "/rest/v1/scores", Some(&token))
            .header("prefer", "resolution=merge-duplicates,return=minimal")
            .json(&json!({"id": 1, "points": points}))
    };
    let (s, e) = send(upsert(9)).await;
    assert_eq!(s, 201, "a new row meets the insert check: {e}");
    let (s, e) = send(upsert(8)).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "8 points fail the update check: {e}");
    assert_eq!(app.get("/rest/v1/scores?select=points").await, (200, json!([{"points": 9}])), "nothing written");
    let (s, e) = send(upsert(11)).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "11 points fail both: {e}");
    let (s, e) = send(upsert(4)).await;
    assert!(s == 200 || s == 201, "4 points meet both: {s} {e}");
    assert_eq!(app.get("/rest/v1/scores?select=points").await, (200, json!([{"points": 4}])));
    // The row an upsert leaves must also stay visible (SELECT policies), returned or not.
    let badge = |visible: bool| {
        app.as_user(Method::POST, "/rest/v1/badges", Some(&token))
            .header("prefer", "resolution=merge-duplicates,return=minimal")
            .json(&json!({"id": 1, "visible": visible}))
    };
    assert_eq!(send(badge(true)).await.0, 201);
    let (s, e) = send(badge(false)).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "an upsert may not hide the row it overwrites: {e}");
    assert_eq!(app.get("/rest/v1/badges?select=visible").await, (200, json!([{"visible": true}])));
}

crate::both_backends!(upserts_meet_the_update_check);

const MEMBERS: &str = r#"
[tables.members]
columns.project_id = { type = "bigint", primary_key = true }
columns.user_id    = { type = "uuid", primary_key = true, default = "auth.uid()" }

[[tables.members.policies]]
name = "members see their own memberships"
command = "select"
roles = ["authenticated"]
using = "user_id = auth.uid()"

[tables.docs]
columns.id         = { type = "bigint", primary_key = true }
columns.project_id = { type = "bigint", not_null = true }
columns.body       = { type = "text" }

[[tables.docs.policies]]
name = "members read their projects' docs"
command = "select"
roles = ["authenticated"]
using = "exists (select 1 from members where members.project_id = docs.project_id)"
"#;

/// A policy's `exists (select ... from other ...)` sees only the rows of `other` the caller
/// may see, as in PostgreSQL, where the subquery runs as the caller: here the membership table's
/// own policy is what limits the documents.
async fn policy_subqueries_see_what_the_caller_sees(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, MEMBERS, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (a, _, a_id) = app.signup("member-a@example.com", json!({})).await;
    let (bt, _, b_id) = app.signup("member-b@example.com", json!({})).await;
    let (s, e) = app.post("/rest/v1/members", json!([{"project_id": 1, "user_id": a_id}, {"project_id": 2, "user_id": b_id}]), "").await;
    assert_eq!(s, 201, "{e}");
    let (s, e) = app
        .post("/rest/v1/docs", json!([{"id": 10, "project_id": 1, "body": "a's"}, {"id": 20, "project_id": 2, "body": "b's"}]), "")
        .await;
    assert_eq!(s, 201, "{e}");
    for (token, body) in [(&a, "a's"), (&bt, "b's")] {
        let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/docs?select=body", Some(token))).await;
        assert_eq!((s, rows), (200, json!([{"body": body}])));
    }
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/docs?select=body", None)).await;
    assert_eq!((s, rows), (200, json!([])), "anon has no policy");
}

crate::both_backends!(policy_subqueries_see_what_the_caller_sees);

const TEAMS: &str = r#"
[tables.projects]
columns.id   = { type = "bigint", primary_key = true }
columns.name = { type = "text" }

[[tables.projects.policies]]
name = "team members read their projects"
command = "select"
roles = ["authenticated"]
using = "exists (select 1 from team where team.project_id = projects.id and team.user_id = auth.uid())"

[tables.team]
columns.project_id = { type = "bigint", primary_key = true, references = "projects.id" }
columns.user_id    = { type = "uuid", primary_key = true }

[[tables.team.policies]]
name = "members see their own rows"
command = "select"
roles = ["authenticated"]
using = "user_id = auth.uid()"
"#;

/// A policy may read a table that its own table's foreign keys make the migration create later
/// (`projects` first, then `team`, which references it): PostgreSQL got `relation "team" does
/// not exist` at start-up, so the membership pattern failed there while SQLite served it.
async fn policies_may_read_tables_created_after_them(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, TEAMS, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, _, uid) = app.signup("team@example.com", json!({})).await;
    let (s, e) = app.post("/rest/v1/projects", json!([{"id": 1, "name": "mine"}, {"id": 2, "name": "theirs"}]), "").await;
    assert_eq!(s, 201, "{e}");
    let (s, e) = app.post("/rest/v1/team", json!({"project_id": 1, "user_id": uid}), "").await;
    assert_eq!(s, 201, "{e}");
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/projects?select=name", Some(&token))).await;
    assert_eq!((s, rows), (200, json!([{"name": "mine"}])));
}

crate::both_backends!(policies_may_read_tables_created_after_them);
