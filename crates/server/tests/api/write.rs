//! Writes: insert, bulk, upsert, update, delete, single-object writes, and what bad input leaves behind.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, Backend, TestApp};

async fn inserts(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let res = app.req(Method::POST, "/rest/v1/lists").json(&json!({"name": "a"})).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["content-range"], "*/*");
    assert_eq!(res.text().await.expect("text"), "");
    let (s, row) = send(
        app.req(Method::POST, "/rest/v1/todos?select=*")
            .header("prefer", "return=representation")
            .header("accept", "application/vnd.pgrst.object+json")
            .json(&json!({"title": "t"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        (row["tags"].clone(), row["meta"].clone(), row["done"].clone(), row["status"].clone()),
        (json!([]), json!({}), json!(false), json!("open"))
    );
    assert_eq!(row["created_at"], row["updated_at"]);
    // Bulk with columns=: columns left out take their default; keys absent from a row are NULL,
    // or the default with missing=default.
    let (s, rows) = app
        .post(
            "/rest/v1/todos?columns=\"title\",\"done\"&select=title,rank,done",
            json!([{"title": "x", "done": true}, {"title": "y"}]),
            "return=representation",
        )
        .await;
    assert_eq!((s, rows), (201, json!([{"title": "x", "rank": null, "done": true}, {"title": "y", "rank": null, "done": null}])));
    let (_, rows) = app
        .post(
            "/rest/v1/todos?columns=\"title\",\"done\"&select=title,done",
            json!([{"title": "z"}]),
            "return=representation,missing=default",
        )
        .await;
    assert_eq!(rows, json!([{"title": "z", "done": false}]));
    // Keys outside columns= are ignored.
    let (s, _) = app.post("/rest/v1/todos?columns=\"title\"", json!([{"title": "w", "bogus": 1}]), "").await;
    assert_eq!(s, 201);
    // One row (bound value by value on SQLite) stores what the same row in a bulk insert stores.
    let typed = json!({"done": true, "rank": 7, "tags": ["a", "é\"\n"], "meta": {"k": [1, null, "x"], "n": 1.5, "u": "\u{1}"},
        "status": "closed", "price": 12.5, "due": "2026-01-02", "list_id": null});
    let with_title = |t: &str, nulls: bool| {
        let mut row = typed.clone();
        row["title"] = json!(t);
        if nulls {
            row["meta"] = json!(null);
            row["rank"] = json!(null);
        }
        row
    };
    let fields = "select=done,rank,tags,meta,status,price,due,list_id";
    for nulls in [false, true] {
        let (s, one) = app.post(&format!("/rest/v1/todos?{fields}"), with_title("typed-one", nulls), "return=representation").await;
        assert_eq!(s, 201, "{one}");
        let (s, bulk) = app
            .post(
                &format!("/rest/v1/todos?{fields}"),
                json!([with_title("typed-a", nulls), with_title("typed-b", nulls)]),
                "return=representation",
            )
            .await;
        assert_eq!(s, 201, "{bulk}");
        assert_eq!((&one[0], &one[0]), (&bulk[0], &bulk[1]));
        let (_, read) = app.get(&format!("/rest/v1/todos?{fields}&title=in.(typed-one,typed-a)")).await;
        assert_eq!(read.as_array().map(|r| (r.len(), r[0] == r[1])), Some((2, true)), "{read}");
        assert_eq!(app.delete("/rest/v1/todos?title=like.typed-*", "").await.0, 204);
    }
    // Count on insert.
    let res = app
        .req(Method::POST, "/rest/v1/lists")
        .header("prefer", "count=exact")
        .json(&json!([{"name": "c1"}, {"name": "c2"}]))
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["content-range"], "*/2");
    // return=headers-only: no body, the new row's key in Location (the first row's, in bulk).
    for (body, want) in [(json!({"id": 41, "body": "a b&c"}), "/notes?id=eq.41"), (json!([{"id": 42}, {"id": 43}]), "/notes?id=eq.42")] {
        let res = app.req(Method::POST, "/rest/v1/notes").header("prefer", "return=headers-only").json(&body).send().await.expect("send");
        assert_eq!(res.status().as_u16(), 201);
        assert_eq!(res.headers()["location"], want);
        assert_eq!(res.headers()["preference-applied"], "return=headers-only");
        assert_eq!(res.text().await.expect("body"), "");
    }
    let res = app
        .req(Method::POST, "/rest/v1/lists")
        .header("prefer", "return=headers-only")
        .json(&json!({"name": "l b"}))
        .send()
        .await
        .expect("send");
    let location = res.headers()["location"].to_str().expect("ascii").to_string();
    assert!(location.starts_with("/lists?id=eq.") && location.len() == "/lists?id=eq.".len() + 36, "{location}");
    let (_, rows) = app.get(&format!("/rest/v1{location}&select=name")).await;
    assert_eq!(rows, json!([{"name": "l b"}]), "Location names the row");
}

async fn upserts(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let (s, _) = app.post("/rest/v1/notes", json!([{"id": 1, "body": "one"}, {"id": 2, "body": "two"}]), "").await;
    assert_eq!(s, 201);
    let res = app
        .req(Method::POST, "/rest/v1/notes?select=id,body")
        .header("prefer", "resolution=merge-duplicates, return=representation")
        .json(&json!([{"id": 1, "body": "uno"}]))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200, "nothing new was inserted");
    assert_eq!(res.headers()["preference-applied"], "resolution=merge-duplicates, return=representation");
    assert_eq!(res.json::<serde_json::Value>().await.expect("json"), json!([{"id": 1, "body": "uno"}]));
    let (s, rows) = app
        .post(
            "/rest/v1/notes?select=id,body",
            json!([{"id": 2, "body": "dos"}, {"id": 3, "body": "tres"}]),
            "resolution=merge-duplicates,return=representation",
        )
        .await;
    assert_eq!((s, rows), (201, json!([{"id": 2, "body": "dos"}, {"id": 3, "body": "tres"}])));
    let (_, rows) = app
        .post(
            "/rest/v1/notes?select=id,body",
            json!([{"id": 3, "body": "drei"}, {"id": 4, "body": "vier"}]),
            "resolution=ignore-duplicates,return=representation",
        )
        .await;
    assert_eq!(rows, json!([{"id": 4, "body": "vier"}]));
    let (s, _) =
        app.post("/rest/v1/notes?select=id", json!({"id": -7, "body": "below"}), "resolution=merge-duplicates,return=representation").await;
    assert_eq!(s, 201, "a new key below the highest is an insert");
    assert_eq!(app.delete("/rest/v1/notes?id=eq.-7", "").await.0, 204);
    let (_, rows) = app.get("/rest/v1/notes?select=body&order=id").await;
    assert_eq!(rows, json!([{"body": "uno"}, {"body": "dos"}, {"body": "tres"}, {"body": "vier"}]));
    // on_conflict on a unique column.
    app.post("/rest/v1/lists", json!({"name": "same"}), "").await;
    let (s, rows) = app
        .post("/rest/v1/lists?on_conflict=name&select=name", json!({"name": "same"}), "resolution=merge-duplicates,return=representation")
        .await;
    assert_eq!((s, rows), (200, json!([{"name": "same"}])));
    let (s, e) = app.post("/rest/v1/notes?on_conflict=body", json!({"id": 9, "body": "x"}), "resolution=merge-duplicates").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("42P10")));
}

async fn updates_and_deletes(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let (_, lists) = app.post("/rest/v1/lists?select=id", json!({"name": "l"}), "return=representation").await;
    let list = lists[0]["id"].clone();
    let (_, rows) = app
        .post(
            "/rest/v1/todos?select=id,created_at",
            json!([{"title": "a", "list_id": list, "rank": 1}, {"title": "b", "list_id": list, "rank": 2}]),
            "return=representation",
        )
        .await;
    let a_id = rows[0]["id"].as_str().expect("id").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let res = app.req(Method::PATCH, "/rest/v1/todos?rank=eq.1").json(&json!({"done": true})).send().await.expect("send");
    assert_eq!((res.status().as_u16(), res.headers()["content-range"].to_str().expect("h")), (204, "0-0/*"));
    let (s, rows) = app
        .patch(
            &format!("/rest/v1/todos?id=eq.{a_id}&select=title,done,rank,created_at,updated_at"),
            json!({"rank": 10, "meta": {"x": [1, 2]}}),
            "return=representation",
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!((rows[0]["done"].clone(), rows[0]["rank"].clone()), (json!(true), json!(10)));
    assert!(rows[0]["updated_at"].as_str() > rows[0]["created_at"].as_str(), "updated_at is maintained: {rows}");
    // Single-object update touching two rows: refused, rolled back.
    let (s, e) = send(
        app.req(Method::PATCH, "/rest/v1/todos?rank=gt.0")
            .header("accept", "application/vnd.pgrst.object+json")
            .json(&json!({"title": "same"})),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (406, Some("PGRST116")));
    let (_, rows) = app.get("/rest/v1/todos?select=title&order=rank").await;
    assert_eq!(rows, json!([{"title": "b"}, {"title": "a"}]));
    // `Prefer: handling=strict, max-affected=n` (supabase-js `.maxAffected(n)`): more rows than
    // that fails and is rolled back; as many passes; without handling=strict it is ignored.
    for (method, path, body) in
        [(Method::PATCH, "/rest/v1/todos?rank=gt.0", json!({"title": "capped"})), (Method::DELETE, "/rest/v1/todos?rank=gt.0", json!(null))]
    {
        let (s, e) = send(app.req(method.clone(), path).header("prefer", "handling=strict, max-affected=1").json(&body)).await;
        assert_eq!(
            (s, e["code"].as_str(), e["message"].as_str(), e["details"].as_str()),
            (400, Some("PGRST124"), Some("Query result exceeds max-affected preference constraint"), Some("The query affects 2 rows")),
            "{method}"
        );
        let (_, rows) = app.get("/rest/v1/todos?select=title&order=rank").await;
        assert_eq!(rows, json!([{"title": "b"}, {"title": "a"}]), "{method} rolled back");
    }
    let res = app
        .req(Method::PATCH, "/rest/v1/todos?rank=gt.0")
        .header("prefer", "handling=strict, max-affected=2")
        .json(&json!({"done": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(res.headers()["preference-applied"], "handling=strict, max-affected=2");
    let (s, _) = app.patch("/rest/v1/todos?rank=gt.0", json!({"done": false}), "max-affected=1").await;
    assert_eq!(s, 204, "ignored without handling=strict");
    // Delete with representation, then cascade through the list.
    let (s, rows) = app.delete("/rest/v1/todos?rank=eq.2&select=title", "return=representation").await;
    assert_eq!((s, rows), (200, json!([{"title": "b"}])));
    app.post("/rest/v1/notes", json!({"id": 7, "todo_id": a_id, "body": "n"}), "").await;
    let res = app.req(Method::DELETE, &format!("/rest/v1/lists?id=eq.{}", list.as_str().expect("id"))).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 204);
    let (_, rows) = app.get("/rest/v1/todos").await;
    assert_eq!(rows, json!([]));
    let (_, rows) = app.get("/rest/v1/notes?select=id,todo_id").await;
    assert_eq!(rows, json!([{"id": 7, "todo_id": null}]), "on delete set null");
    // service_role may update every row.
    let (s, _) = app.patch("/rest/v1/notes", json!({"body": "all"}), "").await;
    assert_eq!(s, 204);
}

async fn write_errors_leave_nothing(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    app.post("/rest/v1/lists", json!({"name": "dup"}), "").await;
    let cases = [
        ("/rest/v1/lists", json!({"name": "dup"}), 409, "23505"),
        ("/rest/v1/todos", json!({"title": "x", "list_id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}), 409, "23503"),
        ("/rest/v1/todos", json!({"rank": 1}), 400, "23502"),
        ("/rest/v1/todos", json!({"title": "x", "status": "weird"}), 400, "23514"),
        ("/rest/v1/todos", json!({"title": "x", "rank": "one"}), 400, "22P02"),
        ("/rest/v1/todos", json!({"title": "x", "rank": 99999999999i64}), 400, "22003"),
        ("/rest/v1/todos", json!({"title": "x", "status": "much too long"}), 400, "22001"),
        ("/rest/v1/todos", json!({"title": "x", "nope": 1}), 400, "PGRST204"),
        ("/rest/v1/todos", json!([{"title": "ok"}, {"title": null}]), 400, "23502"),
        ("/rest/v1/nope", json!({}), 404, "PGRST205"),
        // Refused alike on both backends (SQLite used to store these).
        ("/rest/v1/todos", json!([{"title": "ok"}, {"title": "x\u{0}y"}]), 400, "22P05"),
        ("/rest/v1/todos", json!({"title": "x", "meta": {"k": "\u{0}"}}), 400, "22P05"),
        ("/rest/v1/todos", json!({"title": "x", "due": "0000-01-01"}), 400, "22008"),
        ("/rest/v1/todos", json!({"title": "x", "created_at": "0000-01-01T00:00:00Z"}), 400, "22008"),
        ("/rest/v1/todos?columns=title,title", json!({"title": "x"}), 400, "42701"),
        ("/rest/v1/lists?on_conflict=name", json!([{"name": "zz"}, {"name": "zz"}]), 400, "21000"),
    ];
    for (path, body, status, code) in cases {
        let prefer = if path.contains("on_conflict") { "resolution=merge-duplicates" } else { "" };
        let (s, e) = app.post(path, body.clone(), prefer).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{body}: {e}");
    }
    let (s, e) = send(app.req(Method::POST, "/rest/v1/todos").header("content-type", "application/json").body("{not json")).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST102")));
    assert_eq!(oversized_status(&app).await, 413);
    let (_, rows) = app.get("/rest/v1/todos").await;
    assert_eq!(rows, json!([]), "a failed write leaves no rows");
    let (_, rows) = app.get("/rest/v1/lists?select=name").await;
    assert_eq!(rows, json!([{"name": "dup"}]));
}

/// `uuidv7()` ids: version 7, in creation order, made by the database for a signed-in user.
async fn time_ordered_ids(b: Backend) {
    let schema = r#"
[tables.events]
owner = "user_id"
columns.id      = { type = "uuid", primary_key = true, default = "uuidv7()" }
columns.user_id = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id" }
columns.n       = { type = "integer" }
"#;
    let Some(app) = TestApp::spawn_with(b, schema, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (token, _, _) = app.signup("v7@example.com", json!({})).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (s, rows) = send(
            app.as_user(Method::POST, "/rest/v1/events?select=id", Some(&token))
                .header("prefer", "return=representation")
                .json(&json!([{"n": n}, {"n": n + 100}])),
        )
        .await;
        assert_eq!(s, 201, "{rows}");
        for r in rows.as_array().expect("rows") {
            ids.push(r["id"].as_str().expect("id").to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for id in &ids {
        let u = uuid::Uuid::parse_str(id).expect("uuid");
        assert_eq!(u.get_version_num(), 7, "{id}");
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
    }
    // Milliseconds first: ids from later requests sort after earlier ones.
    let firsts: Vec<&str> = ids.iter().step_by(2).map(|i| &i[..13]).collect();
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(firsts, sorted);
    // missing=default writes the default into the statement, run as the signed-in user.
    let (s, rows) = send(
        app.as_user(Method::POST, "/rest/v1/events?columns=\"id\",\"n\"&select=id,n", Some(&token))
            .header("prefer", "return=representation,missing=default")
            .json(&json!([{"n": 1000}, {"n": 1001, "id": "0190a6e4-8a2b-7c3d-8e4f-5a6b7c8d9e0f"}])),
    )
    .await;
    assert_eq!(s, 201, "{rows}");
    let made = uuid::Uuid::parse_str(rows[0]["id"].as_str().expect("id")).expect("uuid");
    assert_eq!((made.get_version_num(), rows[1]["id"].as_str()), (7, Some("0190a6e4-8a2b-7c3d-8e4f-5a6b7c8d9e0f")));
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/events?select=id", Some(&token))).await;
    assert_eq!((s, rows.as_array().map(Vec::len)), (200, Some(12)));
}

/// `limit`/`offset` with `order` on PATCH and DELETE (PostgREST's limited update and delete):
/// only the rows a read with the same filters, order and range would return are written.
async fn limited_writes(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let (_, lists) = app.post("/rest/v1/lists?select=id", json!({"name": "l"}), "return=representation").await;
    let list = lists[0]["id"].as_str().expect("id").to_string();
    let rows: Vec<serde_json::Value> = (1..=5).map(|r| json!({"title": format!("t{r}"), "list_id": list, "rank": r})).collect();
    let (s, _) = app.post("/rest/v1/todos", serde_json::Value::Array(rows), "").await;
    assert_eq!(s, 201);
    let (s, rows) = app
        .patch(
            &format!("/rest/v1/todos?list_id=eq.{list}&order=rank.desc&limit=2&select=title"),
            json!({"done": true}),
            "return=representation",
        )
        .await;
    let mut titles: Vec<&str> = rows.as_array().expect("rows").iter().filter_map(|r| r["title"].as_str()).collect();
    titles.sort_unstable();
    assert_eq!((s, titles), (200, vec!["t4", "t5"]));
    let (_, done) = app.get("/rest/v1/todos?done=is.true&select=rank&order=rank").await;
    assert_eq!(done, json!([{"rank": 4}, {"rank": 5}]), "only the two highest ranks");
    let res = app.req(Method::DELETE, &format!("/rest/v1/todos?list_id=eq.{list}&order=rank&limit=1&offset=1")).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 204);
    let (_, left) = app.get("/rest/v1/todos?select=rank&order=rank").await;
    assert_eq!(left, json!([{"rank": 1}, {"rank": 3}, {"rank": 4}, {"rank": 5}]), "the second lowest rank went");
    let (s, gone) = app
        .delete(&format!("/rest/v1/todos?list_id=eq.{list}&done=is.false&order=rank.desc&limit=1&select=title"), "return=representation")
        .await;
    assert_eq!((s, gone), (200, json!([{"title": "t3"}])));
    let (s, e) = app.patch("/rest/v1/todos?rank=gt.0&limit=-1", json!({"done": false}), "").await;
    assert_eq!((s, e["code"].as_str()), (416, Some("PGRST103")), "as on reads: {e}");
}

const PUT_SCHEMA: &str = r#"
[tables.notes]
owner = "user_id"
columns.id      = { type = "bigint", primary_key = true }
columns.user_id = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id", on_delete = "cascade" }
columns.body    = { type = "text" }

[tables.seats]
columns.room   = { type = "text", primary_key = true }
columns.number = { type = "integer", primary_key = true }
columns.holder = { type = "text" }
"#;

/// `PUT`: a single-row upsert on the primary key the URL names, as PostgREST.
async fn puts(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, PUT_SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let (alice, _, _) = app.signup("put-alice@example.com", json!({})).await;
    let (bob, _, bob_id) = app.signup("put-bob@example.com", json!({})).await;
    let put = |path: &str, token: &str, prefer: &str, body: Value| {
        app.as_user(Method::PUT, path, Some(token)).header("prefer", prefer.to_string()).json(&body)
    };
    // A new row: 201 with the representation; the same key again replaces it: 200.
    let res = put("/rest/v1/notes?id=eq.1&select=id,body", &alice, "return=representation", json!({"id": 1, "body": "first"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["content-range"], "*/*");
    assert_eq!(res.json::<Value>().await.expect("json"), json!([{"id": 1, "body": "first"}]));
    let (s, rows) = send(put(
        "/rest/v1/notes?id=eq.1&select=id,body",
        &alice,
        "return=representation",
        json!([{"id": 1, "body": "second"}, {"id": 2}]),
    ))
    .await;
    assert_eq!((s, rows), (200, json!([{"id": 1, "body": "second"}])), "an array: its first object, as PostgREST");
    let res = put("/rest/v1/notes?id=eq.1", &alice, "resolution=ignore-duplicates", json!({"id": 1, "body": "third"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 204, "no representation: 204");
    assert!(res.headers().get("preference-applied").is_none(), "resolution does not apply to PUT");
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/notes?select=id,body", Some(&alice))).await;
    assert_eq!((s, rows), (200, json!([{"id": 1, "body": "third"}])), "the row was replaced, not duplicated");
    let (s, row) = send(
        put("/rest/v1/notes?id=eq.5&select=body", &alice, "return=representation", json!({"id": 5, "body": "one"}))
            .header("accept", "application/vnd.pgrst.object+json"),
    )
    .await;
    assert_eq!((s, row), (201, json!({"body": "one"})));

    // A new key below the highest one is still an insert (SQLite's integer keys are its rowids).
    let (s, _) = send(put("/rest/v1/notes?id=eq.3&select=id", &alice, "return=representation", json!({"id": 3}))).await;
    assert_eq!(s, 201, "a new row");
    // Row-level security: bob cannot take over alice's row, and sees nothing of it.
    let (s, e) = send(put("/rest/v1/notes?id=eq.1", &bob, "", json!({"id": 1, "body": "mine now"}))).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "{e}");
    let (_, rows) = send(app.as_user(Method::GET, "/rest/v1/notes?id=eq.1&select=body", Some(&alice))).await;
    assert_eq!(rows, json!([{"body": "third"}]));
    let (s, _) = send(app.req(Method::PUT, "/rest/v1/notes?id=eq.9").json(&json!({"id": 9, "user_id": bob_id}))).await;
    assert_eq!(s, 204, "the service role may");
    let (_, rows) = send(app.as_user(Method::GET, "/rest/v1/notes?select=id", Some(&bob))).await;
    assert_eq!(rows, json!([{"id": 9}]));

    // What PUT refuses.
    let cases: [(&str, Value, u16, &str); 10] = [
        ("/rest/v1/notes?body=eq.x", json!({"id": 1}), 405, "PGRST105"),
        ("/rest/v1/notes?id=gt.1", json!({"id": 1}), 405, "PGRST105"),
        ("/rest/v1/notes?id=not.eq.1", json!({"id": 1}), 405, "PGRST105"),
        ("/rest/v1/notes?id=in.(1)", json!({"id": 1}), 405, "PGRST105"),
        ("/rest/v1/notes?and=(id.eq.1)", json!({"id": 1}), 405, "PGRST105"),
        ("/rest/v1/notes", json!({"id": 1}), 405, "PGRST105"),
        ("/rest/v1/notes?id=eq.1&limit=1", json!({"id": 1}), 400, "PGRST114"),
        ("/rest/v1/notes?id=eq.2", json!({"id": 1, "body": "x"}), 400, "PGRST115"),
        ("/rest/v1/notes?id=eq.2", json!({"body": "x"}), 400, "PGRST115"),
        ("/rest/v1/notes?id=eq.2", json!({"id": 2, "nope": 1}), 400, "PGRST204"),
    ];
    for (path, body, status, code) in cases {
        let (s, e) = send(put(path, &alice, "", body)).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{path}: {e}");
    }
    let (s, e) = send(put("/rest/v1/notes?id=eq.x", &alice, "", json!({"id": 1}))).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("22P02")));
    let (s, e) = send(put("/rest/v1/notes?id=eq.3", &alice, "", json!([]))).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST102")));

    // A composite key needs both columns; "1" in the URL matches 1 in the payload.
    let (s, e) = send(app.req(Method::PUT, "/rest/v1/seats?room=eq.a").json(&json!({"room": "a", "number": 1}))).await;
    assert_eq!((s, e["code"].as_str()), (405, Some("PGRST105")));
    for holder in ["ann", "ben"] {
        let (s, _) =
            send(app.req(Method::PUT, "/rest/v1/seats?room=eq.a&number=eq.1").json(&json!({"room": "a", "number": 1, "holder": holder})))
                .await;
        assert_eq!(s, 204);
    }
    let (_, rows) = app.get("/rest/v1/seats?select=room,number,holder").await;
    assert_eq!(rows, json!([{"room": "a", "number": 1, "holder": "ben"}]));
    let (s, e) = send(app.req(Method::PUT, "/rest/v1/seats?room=eq.a&number=eq.2").json(&json!({"room": "a", "number": 1}))).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST115")));
    let (_, rows) = app.get("/rest/v1/seats?select=holder").await;
    assert_eq!(rows, json!([{"holder": "ben"}]), "a refused PUT changes nothing");
}

/// `text/csv` and form bodies, as PostgREST reads them: strings, `NULL` for null.
async fn csv_and_form_bodies(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let csv = "title,rank,done,tags,price\nfirst,1,true,\"{x,y}\",1.50\n\"second, quoted\",NULL,false,{},NULL\n";
    let res = app
        .req(Method::POST, "/rest/v1/todos?select=title,rank,done,tags,price")
        .header("content-type", "text/csv")
        .header("prefer", "return=representation")
        .body(csv)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 201);
    let rows: Value = res.json().await.expect("json");
    assert_eq!(
        rows,
        json!([
            {"title": "first", "rank": 1, "done": true, "tags": ["x", "y"], "price": 1.5},
            {"title": "second, quoted", "rank": null, "done": false, "tags": [], "price": null}
        ])
    );
    let form =
        |m: Method, path: &str, body: &'static str| app.req(m, path).header("content-type", "application/x-www-form-urlencoded").body(body);
    let (s, rows) =
        send(form(Method::POST, "/rest/v1/lists?select=name", "name=from+a%20form").header("prefer", "return=representation")).await;
    assert_eq!((s, rows), (201, json!([{"name": "from a form"}])));
    let (s, rows) =
        send(form(Method::PATCH, "/rest/v1/todos?title=eq.first&select=rank", "rank=5").header("prefer", "return=representation")).await;
    assert_eq!((s, rows), (200, json!([{"rank": 5}])));
    let csv_patch = |body: &'static str| {
        app.req(Method::PATCH, "/rest/v1/todos?title=eq.first&select=rank")
            .header("content-type", "text/csv")
            .header("prefer", "return=representation")
            .body(body)
    };
    let (s, rows) = send(csv_patch("rank\n6\n")).await;
    assert_eq!((s, rows), (200, json!([{"rank": 6}])), "a one-row CSV body patches");
    let (s, e) = send(csv_patch("rank\n6\n7\n")).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST102")));
    // curl -d '{...}' without a content type sends JSON as a form: it is read as JSON.
    let (s, rows) =
        send(form(Method::POST, "/rest/v1/lists?select=name", r#"{"name": "curl"}"#).header("prefer", "return=representation")).await;
    assert_eq!((s, rows), (201, json!([{"name": "curl"}])));
    let bad = |body: &'static str| app.req(Method::POST, "/rest/v1/todos").header("content-type", "text/csv; charset=utf-8").body(body);
    let (s, e) = send(bad("title,rank\nx,1,2\n")).await;
    assert_eq!((s, e["code"].as_str(), e["message"].as_str()), (400, Some("PGRST102"), Some("All lines must have same number of fields")));
    let (s, e) = send(bad("title,nope\nx,1\n")).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST204")));
    let (s, e) = send(bad("title,rank\nx,one\n")).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("22P02")));
    let (_, rows) = app.get("/rest/v1/todos?select=title&order=title").await;
    assert_eq!(rows, json!([{"title": "first"}, {"title": "second, quoted"}]), "refused bodies left nothing");
}

crate::both_backends!(
    inserts,
    upserts,
    puts,
    csv_and_form_bodies,
    updates_and_deletes,
    write_errors_leave_nothing,
    time_ordered_ids,
    limited_writes
);

/// Declares an 11 MB body and reads the answer before sending it, as a client with
/// `Expect: 100-continue` would; the server must refuse without reading the body.
async fn oversized_status(app: &TestApp) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.host();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /rest/v1/todos HTTP/1.1\r\nhost: {addr}\r\napikey: {k}\r\nauthorization: Bearer {k}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        11 * 1024 * 1024,
        k = app.service
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}
