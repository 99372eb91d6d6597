//! Reads: select shapes, embeds, filters, order, ranges, counts, media types.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, Backend, TestApp};

/// Two lists; four todos in "home" with ranks 1..3 and one without rank.
async fn seed(app: &TestApp) -> String {
    let (s, lists) = app.post("/rest/v1/lists?select=id,name", json!([{"name": "home"}, {"name": "empty"}]), "return=representation").await;
    assert_eq!(s, 201, "{lists}");
    let home = lists[0]["id"].as_str().expect("id").to_string();
    let rows = json!([
        {"list_id": home, "title": "alpha", "rank": 1, "tags": ["a", "b"], "meta": {"k": {"n": 1}}, "price": 1.5, "due": "2026-01-02"},
        {"list_id": home, "title": "beta", "rank": 2, "tags": ["b"], "meta": {"k": {"n": 2}}, "done": true},
        {"list_id": home, "title": "Gamma, the third", "rank": 3, "status": "closed"},
        {"list_id": home, "title": "delta"}
    ]);
    let (s, body) = app
        .post(
            "/rest/v1/todos?columns=\"list_id\",\"title\",\"rank\",\"tags\",\"meta\",\"price\",\"due\",\"done\",\"status\"",
            rows,
            "missing=default",
        )
        .await;
    assert_eq!(s, 201, "{body}");
    home
}

fn titles(v: &Value) -> Vec<&str> {
    v.as_array().expect("array").iter().map(|r| r["title"].as_str().unwrap_or("?")).collect()
}

async fn reads(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    seed(&app).await;
    // Wire format of each type.
    let (s, rows) = app.get("/rest/v1/todos?select=*&title=eq.alpha").await;
    assert_eq!(s, 200);
    let r = &rows[0];
    assert_eq!(
        (r["done"].clone(), r["rank"].clone(), r["tags"].clone(), r["meta"].clone()),
        (json!(false), json!(1), json!(["a", "b"]), json!({"k": {"n": 1}}))
    );
    assert_eq!((r["price"].as_f64(), r["due"].as_str(), r["status"].as_str()), (Some(1.5), Some("2026-01-02"), Some("open")));
    let ts = r["created_at"].as_str().expect("timestamp");
    assert!(ts.len() >= 25 && ts.ends_with("+00:00") && &ts[10..11] == "T", "{ts}");
    assert_eq!(r["id"].as_str().expect("id"), r["id"].as_str().expect("id").to_lowercase());
    // Aliases, casts, JSON paths.
    let (_, rows) = app.get("/rest/v1/todos?select=t:title,rank::text,n:meta->k->>n,k:meta->k&title=eq.beta").await;
    assert_eq!(rows, json!([{"t": "beta", "rank": "2", "n": "2", "k": {"n": 2}}]));
    // Filters.
    let cases = [
        ("rank=gt.1&order=rank", vec!["beta", "Gamma, the third"]),
        ("rank=lte.2&rank=neq.1", vec!["beta"]),
        ("title=like.*ta&order=title", vec!["beta", "delta"]),
        ("title=like.*TA", vec![]),
        ("title=ilike.G*&order=title", vec!["Gamma, the third"]),
        ("rank=is.null", vec!["delta"]),
        ("done=is.true", vec!["beta"]),
        ("title=in.(alpha,\"Gamma, the third\")&order=rank", vec!["alpha", "Gamma, the third"]),
        ("rank=not.in.(1,2)&order=rank", vec!["Gamma, the third"]),
        ("tags=cs.{b}&order=rank", vec!["alpha", "beta"]),
        ("tags=cd.{a,b,c}&order=rank", vec!["alpha", "beta", "Gamma, the third", "delta"]),
        ("tags=cd.{b}&order=rank", vec!["beta", "Gamma, the third", "delta"]),
        ("tags=ov.{a,z}", vec!["alpha"]),
        ("meta=cs.{\"k\":{\"n\":2}}", vec!["beta"]),
        ("tags=not.cs.{a}&order=rank.nullslast&limit=1", vec!["beta"]),
        ("or=(rank.eq.1,title.eq.delta)&order=title", vec!["alpha", "delta"]),
        ("or=(rank.eq.3,and(rank.gte.1,done.is.true))&order=rank", vec!["beta", "Gamma, the third"]),
        ("not.or=(rank.eq.1,rank.is.null)&order=rank", vec!["beta", "Gamma, the third"]),
        ("meta->k->>n=eq.2", vec!["beta"]),
        ("due=gte.2026-01-01", vec!["alpha"]),
        ("status=eq.closed", vec!["Gamma, the third"]),
        ("title=match.^[ab]&order=title", vec!["alpha", "beta"]),
        ("rank=eq(any).{1,3}&order=rank", vec!["alpha", "Gamma, the third"]),
        ("title=like(any).{a*,d*}&order=title", vec!["alpha", "delta"]),
        ("rank=isdistinct.1&order=rank", vec!["beta", "Gamma, the third", "delta"]),
    ];
    for (q, want) in cases {
        let (s, rows) = app.get(&format!("/rest/v1/todos?select=title&{q}")).await;
        assert_eq!(s, 200, "{q}: {rows}");
        assert_eq!(titles(&rows), want, "{q}");
    }
    // PostgreSQL null ordering: ascending puts nulls last, descending first.
    let (_, rows) = app.get("/rest/v1/todos?select=title&order=rank").await;
    assert_eq!(titles(&rows), vec!["alpha", "beta", "Gamma, the third", "delta"]);
    let (_, rows) = app.get("/rest/v1/todos?select=title&order=rank.desc").await;
    assert_eq!(titles(&rows), vec!["delta", "Gamma, the third", "beta", "alpha"]);
    let (_, rows) = app.get("/rest/v1/todos?select=title&order=rank.desc.nullslast&limit=2&offset=1").await;
    assert_eq!(titles(&rows), vec!["beta", "alpha"]);
}

async fn embeds(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    seed(&app).await;
    let (_, rows) = app.get("/rest/v1/todos?select=title,lists(name)&rank=eq.1").await;
    assert_eq!(rows, json!([{"title": "alpha", "lists": {"name": "home"}}]));
    let (_, rows) = app.get("/rest/v1/lists?select=name,items:todos(title)&items.order=rank.desc&items.limit=2&order=name").await;
    assert_eq!(
        rows,
        json!([{"name": "empty", "items": []}, {"name": "home", "items": [{"title": "delta"}, {"title": "Gamma, the third"}]}])
    );
    let (_, rows) = app.get("/rest/v1/lists?select=name,todos!inner(title)&todos.rank=eq.2").await;
    assert_eq!(rows, json!([{"name": "home", "todos": [{"title": "beta"}]}]));
    let (_, rows) = app.get("/rest/v1/lists?select=name,todos(title)&todos=is.null").await;
    assert_eq!(rows, json!([{"name": "empty", "todos": []}]));
    let (_, rows) = app.get("/rest/v1/lists?select=name,todos(count)&order=name").await;
    assert_eq!(rows, json!([{"name": "empty", "todos": [{"count": 0}]}, {"name": "home", "todos": [{"count": 4}]}]));
    // Two levels: notes -> todos -> lists.
    let (_, todo) = app.get("/rest/v1/todos?select=id&rank=eq.1").await;
    let (s, _) = app.post("/rest/v1/notes", json!({"id": 1, "todo_id": todo[0]["id"], "body": "n"}), "").await;
    assert_eq!(s, 201);
    let (_, rows) = app.get("/rest/v1/notes?select=body,todos(title,lists(name))").await;
    assert_eq!(rows, json!([{"body": "n", "todos": {"title": "alpha", "lists": {"name": "home"}}}]));
    let (_, rows) = app.get("/rest/v1/lists?select=name,todos(title,notes(body))&todos.rank=eq.1&name=eq.home").await;
    assert_eq!(rows, json!([{"name": "home", "todos": [{"title": "alpha", "notes": [{"body": "n"}]}]}]));
}

async fn ranges_and_counts(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    seed(&app).await;
    let res =
        app.req(Method::GET, "/rest/v1/todos?select=title&order=rank&limit=2").header("prefer", "count=exact").send().await.expect("send");
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.headers()["content-range"], "0-1/4");
    let res = app.req(Method::GET, "/rest/v1/todos?select=title").send().await.expect("send");
    assert_eq!((res.status().as_u16(), res.headers()["content-range"].to_str().expect("h")), (200, "0-3/*"));
    let res = app.req(Method::GET, "/rest/v1/todos?select=title&order=rank").header("range", "1-2").send().await.expect("send");
    assert_eq!(res.headers()["content-range"], "1-2/*");
    let res = app.req(Method::HEAD, "/rest/v1/todos?select=*").header("prefer", "count=exact").send().await.expect("send");
    assert_eq!((res.status().as_u16(), res.headers()["content-range"].to_str().expect("h")), (200, "0-3/4"));
    let res = app.req(Method::GET, "/rest/v1/todos?title=eq.none").header("prefer", "count=exact").send().await.expect("send");
    assert_eq!(res.headers()["content-range"], "*/0");
    let (s, e) = send(app.req(Method::GET, "/rest/v1/todos?offset=10").header("prefer", "count=exact")).await;
    assert_eq!((s, e["code"].as_str()), (416, Some("PGRST103")));
    let (s, e) = app.get("/rest/v1/todos?limit=-1").await;
    assert_eq!((s, e["code"].as_str()), (416, Some("PGRST103")));
    // Single object.
    let (s, o) =
        send(app.req(Method::GET, "/rest/v1/todos?select=title&rank=eq.1").header("accept", "application/vnd.pgrst.object+json")).await;
    assert_eq!((s, o), (200, json!({"title": "alpha"})));
    let (s, e) = send(app.req(Method::GET, "/rest/v1/todos?select=title").header("accept", "application/vnd.pgrst.object+json")).await;
    assert_eq!((s, e["code"].as_str(), e["details"].as_str()), (406, Some("PGRST116"), Some("The result contains 4 rows")));
    // CSV.
    let res = app
        .req(Method::GET, "/rest/v1/todos?select=title,rank&order=rank&limit=3")
        .header("accept", "text/csv")
        .send()
        .await
        .expect("send");
    assert_eq!(res.text().await.expect("text"), "title,rank\nalpha,1\nbeta,2\n\"Gamma, the third\",3");
    let res = app
        .req(Method::GET, "/rest/v1/todos?select=title")
        .header("accept", "application/vnd.pgrst.object+json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["proxy-status"], "PostgREST; error=PGRST116");
    let (s, e) = send(app.req(Method::GET, "/rest/v1/todos").header("accept", "image/png")).await;
    assert_eq!((s, e["code"].as_str()), (406, Some("PGRST107")));
}

async fn read_errors(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let cases = [
        ("/rest/v1/todoz", 404, "PGRST205"),
        ("/rest/v1/todos?select=nope", 400, "42703"),
        ("/rest/v1/todos?nope=eq.1", 400, "42703"),
        ("/rest/v1/todos?order=nope", 400, "42703"),
        ("/rest/v1/todos?rank=eqq.1", 400, "PGRST100"),
        ("/rest/v1/todos?rank=eq", 400, "PGRST100"),
        ("/rest/v1/todos?select=id,(", 400, "PGRST100"),
        ("/rest/v1/todos?or=(rank.eq.1", 400, "PGRST100"),
        ("/rest/v1/todos?rank=eq.abc", 400, "22P02"),
        ("/rest/v1/todos?id=eq.not-a-uuid", 400, "22P02"),
        ("/rest/v1/todos?due=gt.nonsense", 400, "22007"),
        ("/rest/v1/todos?due=eq.2026-02-30", 400, "22008"),
        ("/rest/v1/todos?select=*,nope(*)", 400, "PGRST200"),
        ("/rest/v1/todos?nope.rank=eq.1", 400, "PGRST108"),
        ("/rest/v1/todos?rank=like.1*", 404, "42883"),
        ("/rest/v1/todos?title=adj.cat", 400, "PGRST127"),
        ("/rest/v1/todos?limit=ten", 400, "PGRST100"),
    ];
    for (path, status, code) in cases {
        let (s, e) = app.get(path).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{path}: {e}");
        assert!(e.get("message").is_some() && e.get("details").is_some() && e.get("hint").is_some(), "{e}");
    }
    let (_, e) = app.get("/rest/v1/todo").await;
    assert_eq!(e["hint"], "Perhaps you meant the table 'public.todos'");
    // Nesting is bounded before anything recurses over it: hundreds of levels used to overflow a
    // worker's stack and abort the server; twenty embeds were a 500 on SQLite.
    let deep = |open: &str, inner: &str, n: usize| format!("{}{inner}{}", open.repeat(n), ")".repeat(n));
    for path in [
        format!("/rest/v1/todos?select={}", deep("lists(todos(", "id", 200).replace(")", "))")),
        format!("/rest/v1/todos?select={}", deep("lists(todos(", "id", 9).replace(")", "))")),
        format!("/rest/v1/todos?or=({})", deep("or(", "rank.eq.1", 300)),
        format!("/rest/v1/todos?or=({})", deep("and(", "rank.eq.1", 40)),
        format!("/rest/v1/lists?select=id,todos(id)&todos.or=({})", deep("or(", "rank.eq.1", 300)),
    ] {
        let (s, e) = app.get(&path).await;
        assert_eq!((s, e["code"].as_str()), (400, Some("PGRST100")), "{e}");
        assert!(e["details"].as_str().unwrap_or_default().contains("levels deep"), "{e}");
    }
    let (s, rows) = app.get(&format!("/rest/v1/todos?select=id,{}", deep("lists(todos(", "id", 8).replace(")", "))"))).await;
    assert_eq!(s, 200, "sixteen levels of embeds are served: {rows}");
    let (s, rows) = app.get(&format!("/rest/v1/todos?select=id&or=({})", deep("or(", "rank.eq.1", 30))).await;
    assert_eq!(s, 200, "thirty levels of logic are served: {rows}");
    let (s, _) = app.get("/health").await;
    assert_eq!(s, 200, "the server is still up");
    // Found by probing: a panic (overflow), 500s, and answers that differed between backends.
    let (s, _) = app.post("/rest/v1/todos", json!({"title": "not json"}), "").await;
    assert_eq!(s, 201);
    let res = app.req(Method::GET, "/rest/v1/todos?select=title").header("range", "0-9223372036854775807").send().await.expect("send");
    assert_eq!(res.status(), 200);
    for (path, status, code) in [
        ("/rest/v1/todos?select=title::jsonb", 400, "22P02"),
        ("/rest/v1/todos?title=match.((", 400, "2201B"),
        ("/rest/v1/todos?title=eq.%00", 400, "22021"),
        ("/rest/v1/todos?or=(title.eq.%00)", 400, "22021"),
        ("/rest/v1/todos?title=like.abc%5C", 400, "22025"),
        ("/rest/v1/todos?title=ilike(any).{a*,b%5C}", 400, "22025"),
        ("/rest/v1/todos?due=gt.0000-01-01", 400, "22008"),
        ("/rest/v1/todos?created_at=gt.-0001-01-01", 400, "22007"),
    ] {
        let (s, e) = app.get(path).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{path}: {e}");
    }
    let (_, rows) = app.get("/rest/v1/todos?title=like.%5C%5C").await;
    assert_eq!(rows, json!([]), "an escaped backslash is a pattern");
    let wide = (0..5000).map(|i| format!("a{i}:title")).collect::<Vec<_>>().join(",");
    let (s, e) = app.get(&format!("/rest/v1/todos?select={wide}")).await;
    assert!(s == 413 && e["code"].as_str().is_some_and(|c| c.starts_with("54")), "a statement past the database's limits: {s} {e}");
    let long_order = vec!["rank"; 5000].join(",");
    let (s, e) = app.get(&format!("/rest/v1/todos?select=title&order={long_order}")).await;
    assert!(s == 200 || s == 413, "{s} {e}");
}

/// A table that references itself embeds both ways, told apart by the hint.
async fn self_references(b: Backend) {
    let schema = "[tables.tasks]\ncolumns.id = { type = \"bigint\", primary_key = true }\ncolumns.parent_id = { type = \"bigint\", references = \"tasks.id\" }\ncolumns.title = { type = \"text\" }\n";
    let Some(app) = TestApp::spawn(b, schema).await else { return };
    app.post("/rest/v1/tasks", json!([{"id": 1, "title": "root"}, {"id": 2, "parent_id": 1, "title": "child"}]), "").await;
    let (s, rows) = app.get("/rest/v1/tasks?select=title,parent:tasks!parent_id(title)&id=eq.2").await;
    assert_eq!((s, rows), (200, json!([{"title": "child", "parent": {"title": "root"}}])));
    let (s, rows) = app.get("/rest/v1/tasks?select=title,children:tasks!tasks_parent_id_fkey(title)&id=eq.1").await;
    assert_eq!((s, rows), (200, json!([{"title": "root", "children": [{"title": "child"}]}])));
    let (s, e) = app.get("/rest/v1/tasks?select=title,tasks(title)").await;
    assert_eq!((s, e["code"].as_str()), (300, Some("PGRST201")));
}

/// `textSearch`: PostgREST's four full-text operators, as PostgreSQL's `english` and `simple`
/// configurations match them (SQLite runs them through basalt-textsearch).
async fn text_search(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let home = seed(&app).await;
    let rows = json!([
        {"list_id": home, "title": "The fat cat ate the rat", "meta": {"note": "Fat cats chase rats"}},
        {"list_id": home, "title": "A supernova is a powerful stellar explosion"},
        {"list_id": home, "title": "fat-cat and the mouse"}
    ]);
    let (s, body) = app.post("/rest/v1/todos", rows, "").await;
    assert_eq!(s, 201, "{body}");
    let cat = "The fat cat ate the rat";
    let nova = "A supernova is a powerful stellar explosion";
    let mouse = "fat-cat and the mouse";
    let cases = [
        ("title=fts.cats", vec![cat, mouse]),
        ("title=fts.cat %26 !mouse", vec![cat]),
        ("title=fts.cat <-> the <-> rat", vec![]),
        ("title=fts.ate <2> rat", vec![cat]),
        ("title=fts.super:*", vec![nova]),
        ("title=fts(simple).cats", vec![]),
        ("title=fts(pg_catalog.english).(fat | lean) %26 cat", vec![cat, mouse]),
        ("title=plfts.The Fat Rats", vec![cat]),
        ("title=plfts(simple).the fat", vec![cat, mouse]),
        ("title=phfts.stellar explosions", vec![nova]),
        ("title=phfts.ate the rat", vec![cat]),
        ("title=phfts.fat rat", vec![]),
        ("title=wfts.\"fat rat\" or supernova -dog", vec![nova]),
        ("title=wfts.fat -mouse", vec![cat]),
        ("title=not.wfts.fat&rank=is.null", vec!["delta", nova]),
        ("title=fts.the", vec![]),
        ("meta->>note=plfts.chasing cat", vec![cat]),
        ("or=(title.phfts.fat cat,title.fts.explosion)", vec![cat, nova, mouse]),
    ];
    for (q, mut want) in cases {
        let (s, rows) = app.get(&format!("/rest/v1/todos?select=title&order=title&{q}")).await;
        assert_eq!(s, 200, "{q}: {rows}");
        want.sort_by_key(|t| t.to_string());
        let mut got = titles(&rows);
        got.sort();
        assert_eq!(got, want, "{q}");
    }
    let errors = [
        ("title=fts.cat %26", 400, "42601", "no operand in tsquery: \"cat &\""),
        ("title=fts.%26 cat", 400, "42601", "syntax error in tsquery: \"& cat\""),
        ("title=fts(klingon).cat", 400, "42704", "text search configuration \"klingon\" does not exist"),
        ("rank=fts.cat", 404, "42883", "operator does not exist: integer @@ unknown"),
        ("title=fts(bad name).cat", 400, "PGRST100", ""),
    ];
    for (q, status, code, message) in errors {
        let (s, e) = app.get(&format!("/rest/v1/todos?{q}")).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{q}: {e}");
        if !message.is_empty() {
            assert_eq!(e["message"], message, "{q}");
        }
    }
}

/// `order=rel(col)`: parents ordered by a column of an embedded to-one row, which its filters
/// and policies shape as they shape the embed.
async fn related_order(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let (_, lists) = app.post("/rest/v1/lists?select=id", json!([{"name": "b-list"}, {"name": "a-list"}]), "return=representation").await;
    let (b_list, a_list) = (lists[0]["id"].clone(), lists[1]["id"].clone());
    let rows = json!([{"title": "in b", "list_id": b_list}, {"title": "in a", "list_id": a_list}, {"title": "no list", "list_id": null}]);
    let (s, body) = app.post("/rest/v1/todos", rows, "").await;
    assert_eq!(s, 201, "{body}");
    for (q, want) in [
        ("select=title,lists(name)&order=lists(name)", vec!["in a", "in b", "no list"]),
        ("select=title,lists(name)&order=lists(name).desc", vec!["no list", "in b", "in a"]),
        ("select=title,lists(name)&order=lists(name).desc.nullslast", vec!["in b", "in a", "no list"]),
        ("select=title,l:lists(name)&order=l(name).asc,title", vec!["in a", "in b", "no list"]),
        ("select=title,lists(name)&lists.name=eq.b-list&order=lists(name).nullsfirst,title", vec!["in a", "no list", "in b"]),
        // An embed's existence inside a logic tree.
        ("select=title,lists(name)&or=(lists.is.null,title.eq.in a)&order=title", vec!["in a", "no list"]),
        ("select=title,lists()&lists.name=eq.b-list&or=(lists.not.is.null,title.eq.no list)&order=title", vec!["in b", "no list"]),
        ("select=title,lists(name)&not.and=(lists.not.is.null,title.like.in*)&order=title", vec!["no list"]),
    ] {
        let (s, rows) = app.get(&format!("/rest/v1/todos?{q}")).await;
        assert_eq!(s, 200, "{q}: {rows}");
        assert_eq!(titles(&rows), want, "{q}");
    }
    for (q, code) in [
        ("todos?select=title&order=lists(name)", "PGRST108"),
        ("lists?select=name,todos(title)&order=todos(title)", "PGRST118"),
        ("todos?select=title,lists(name)&order=lists(nope)", "42703"),
        ("todos?select=title,lists(name)&order=lists(name", "PGRST100"),
        ("todos?select=title,lists(name)&or=(lists.eq.1,title.eq.x)", "PGRST120"),
    ] {
        let (s, e) = app.get(&format!("/rest/v1/{q}")).await;
        assert_eq!((s, e["code"].as_str()), (400, Some(code)), "{q}: {e}");
    }
    let (s, e) = send(app.req(Method::DELETE, "/rest/v1/todos?title=eq.x&order=lists(name)&limit=1")).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST118")), "{e}");
}

/// Aggregate functions (`db-aggregates-enabled`): grouped by the other selected columns, in
/// embeds too, under row-level security; off by default.
async fn aggregates(b: Backend) {
    let Some(off) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let (s, e) = off.get("/rest/v1/todos?select=count()").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST123")), "off by default: {e}");
    drop(off);
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &[("BASALT_DB_AGGREGATES_ENABLED", "true")]).await else { return };
    seed(&app).await;
    let app = &app;
    let get = |path: &'static str| async move {
        let (s, body) = app.get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        body
    };
    assert_eq!(get("/rest/v1/todos?select=count()").await, json!([{"count": 4}]));
    assert_eq!(get("/rest/v1/todos?select=n:count(),ranked:rank.count()&status=eq.open").await, json!([{"n": 3, "ranked": 2}]));
    assert_eq!(
        get("/rest/v1/todos?select=status,count(),total:rank.sum(),top:rank.max(),first:due.min(),last:title.max()&order=status").await,
        json!([
            {"status": "closed", "count": 1, "total": 3, "top": 3, "first": null, "last": "Gamma, the third"},
            {"status": "open", "count": 3, "total": 3, "top": 2, "first": "2026-01-02", "last": "delta"}
        ])
    );
    assert_eq!(
        get("/rest/v1/todos?select=done,count()&order=done.desc").await,
        json!([{"done": true, "count": 1}, {"done": false, "count": 3}])
    );
    assert_eq!(get("/rest/v1/todos?select=status,count()&order=status.desc&limit=1").await, json!([{"status": "open", "count": 3}]));
    assert_eq!(get("/rest/v1/todos?select=rank.sum()::text").await, json!([{"sum": "6"}]));
    assert_eq!(get("/rest/v1/todos?select=price.sum()").await[0]["sum"].as_f64(), Some(1.5));
    let avg = get("/rest/v1/todos?select=rank.avg()").await;
    assert_eq!(avg[0]["avg"].as_f64(), Some(2.0), "{avg}");
    assert_eq!(get("/rest/v1/todos?select=meta->k->>n,count()&order=meta->k->>n.nullsfirst").await.as_array().map(Vec::len), Some(3));
    assert_eq!(get("/rest/v1/todos?select=count()&title=eq.nothing").await, json!([{"count": 0}]));
    assert_eq!(get("/rest/v1/todos?select=meta->k->>n.max()").await, json!([{"max": "2"}]), "->> is text");
    assert_eq!(app.post("/rest/v1/todos", json!({"title": "s", "meta": {"s": 90}}), "").await.0, 201);
    assert_eq!(get("/rest/v1/todos?select=meta->>s.max()").await, json!([{"max": "90"}]), "->> is text");
    assert_eq!(app.delete("/rest/v1/todos?title=eq.s", "").await.0, 204);
    assert_eq!(
        get("/rest/v1/todos?select=price::int,price.max()::int&price=not.is.null").await,
        json!([{"price": 2, "max": 2}]),
        "rounded, as PostgreSQL"
    );
    for (path, range) in [("/rest/v1/todos?select=status,count()&limit=1", "0-0/2"), ("/rest/v1/todos?select=count()", "0-0/1")] {
        let res = app.req(Method::GET, path).header("prefer", "count=exact").send().await.expect("send");
        assert_eq!(res.headers()["content-range"], range, "{path}: groups are counted");
    }
    assert_eq!(get("/rest/v1/todos?select=rank.sum()&title=eq.nothing").await, json!([{"sum": null}]));
    // In an embed: per parent.
    assert_eq!(
        get("/rest/v1/lists?select=name,todos(count(),rank.max())&order=name").await,
        json!([{"name": "empty", "todos": [{"count": 0, "max": null}]}, {"name": "home", "todos": [{"count": 4, "max": 3}]}])
    );
    // Beside a to-one embed: grouped by the related row.
    let (s, _) = app.post("/rest/v1/todos", json!({"title": "loose", "rank": 10}), "").await;
    assert_eq!(s, 201);
    let mut groups = get("/rest/v1/todos?select=n:count(),rank.sum(),lists(name)").await;
    groups.as_array_mut().expect("array").sort_by_key(|g| g["n"].as_i64());
    assert_eq!(groups, json!([{"n": 1, "sum": 10, "lists": null}, {"n": 4, "sum": 6, "lists": {"name": "home"}}]));
    assert_eq!(app.delete("/rest/v1/todos?title=eq.loose", "").await.0, 204);
    // What is refused, as PostgreSQL or PostgREST would.
    for (path, status, code) in [
        ("/rest/v1/todos?select=title.sum()", 404, "42883"),
        ("/rest/v1/todos?select=done.max()", 404, "42883"),
        ("/rest/v1/todos?select=meta.sum()", 404, "42883"),
        ("/rest/v1/todos?select=status,count()&order=rank", 400, "42803"),
        ("/rest/v1/lists?select=name.max(),todos(title)", 400, "PGRST127"),
        ("/rest/v1/todos?select=rank.median()", 400, "PGRST100"),
        ("/rest/v1/todos?select=nope.sum()", 400, "42703"),
    ] {
        let (s, e) = app.get(path).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{path}: {e}");
    }
    let (_, e) = app.get("/rest/v1/todos?select=meta.max()").await;
    assert_eq!(e["message"], "function max(jsonb) does not exist");
    let (s, e) = app.post("/rest/v1/lists?select=count()", json!({"name": "x"}), "return=representation").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST127")), "{e}");
    let (_, rows) = app.get("/rest/v1/lists?name=eq.x").await;
    assert_eq!(rows, json!([]), "the refused write left nothing");

    // Row-level security: a user's aggregate sees only the rows they may read.
    let Some(owned) = TestApp::spawn_with(b, OWNED, &[("BASALT_DB_AGGREGATES_ENABLED", "true"), ("BASALT_AUTH_AUTOCONFIRM", "true")]).await
    else {
        return;
    };
    let (a, _, a_id) = owned.signup("agg-a@example.com", json!({})).await;
    let (_, _, b_id) = owned.signup("agg-b@example.com", json!({})).await;
    let rows = json!([{"owner": a_id, "cost": 2}, {"owner": a_id, "cost": 3}, {"owner": b_id, "cost": 100}]);
    assert_eq!(owned.post("/rest/v1/usage", rows, "").await.0, 201);
    let (s, mine) = send(owned.as_user(Method::GET, "/rest/v1/usage?select=count(),cost.sum()", Some(&a))).await;
    assert_eq!((s, mine), (200, json!([{"count": 2, "sum": 5}])));
    let (s, anon) = send(owned.as_user(Method::GET, "/rest/v1/usage?select=count()", None)).await;
    assert_eq!((s, anon), (200, json!([{"count": 0}])));
}

const OWNED: &str = r#"
[tables.usage]
owner = "owner"
columns.id    = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.owner = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id", on_delete = "cascade" }
columns.cost  = { type = "integer", not_null = true }
"#;

crate::both_backends!(reads, embeds, ranges_and_counts, read_errors, self_references, text_search, related_order, aggregates);

/// SQLite readers keep their snapshot from one request to the next while nothing is committed.
/// Every read still sees each write answered before it (through several readers at once), and
/// a write by another process on the data file shows within moments.
#[tokio::test]
async fn sqlite_reads_see_every_write() {
    let app = TestApp::spawn(Backend::Sqlite, crate::SCHEMA).await.expect("sqlite");
    for i in 0..20 {
        let (s, _) = app.post("/rest/v1/lists", json!({"name": format!("l{i}")}), "return=minimal").await;
        assert_eq!(s, 201);
        let path = "/rest/v1/lists?select=name&order=name";
        let (a, b, c, d) = tokio::join!(app.get(path), app.get(path), app.get(path), app.get(path));
        for (s, rows) in [a, b, c, d] {
            assert_eq!((s, rows.as_array().map(Vec::len)), (200, Some(i + 1)), "{rows}");
        }
    }
    let db = rusqlite::Connection::open(app.dir.path().join("data").join("data.db")).expect("open the data file");
    db.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
    // The column defaults call Basalt's SQL functions; this connection is not Basalt's.
    db.create_scalar_function("basalt_now", 0, rusqlite::functions::FunctionFlags::SQLITE_UTF8, |_| Ok("2026-01-01T00:00:00Z"))
        .expect("basalt_now");
    db.execute("INSERT INTO lists (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'outside')", []).expect("insert");
    let mut seen = false;
    for _ in 0..100 {
        let (s, rows) = app.get("/rest/v1/lists?select=name&name=eq.outside").await;
        assert_eq!(s, 200);
        if rows.as_array().is_some_and(|r| r.len() == 1) {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen, "a row written by another process never showed");
}

const BLOG: &str = r#"
[tables.posts]
columns.id    = { type = "bigint", primary_key = true }
columns.title = { type = "text" }

[[tables.posts.policies]]
name = "anyone reads posts"
command = "select"
roles = ["anon"]
using = "true"

[tables.tags]
columns.id   = { type = "bigint", primary_key = true }
columns.name = { type = "text" }

[[tables.tags.policies]]
name = "anyone reads tags"
command = "select"
roles = ["anon"]
using = "true"

[tables.post_tags]
columns.post_id = { type = "bigint", primary_key = true, references = "posts.id" }
columns.tag_id  = { type = "bigint", primary_key = true, references = "tags.id" }
"#;

/// Many-to-many embeds through a junction table, both ways, with counts, `!inner` filters and
/// the junction's own policies (anon may not read `post_tags`, so it sees no links).
async fn many_to_many(b: Backend) {
    let Some(app) = TestApp::spawn(b, BLOG).await else { return };
    app.post("/rest/v1/posts", json!([{"id": 1, "title": "one"}, {"id": 2, "title": "two"}, {"id": 3, "title": "three"}]), "").await;
    app.post("/rest/v1/tags", json!([{"id": 10, "name": "rust"}, {"id": 20, "name": "sql"}]), "").await;
    let (s, e) = app
        .post("/rest/v1/post_tags", json!([{"post_id": 1, "tag_id": 10}, {"post_id": 1, "tag_id": 20}, {"post_id": 2, "tag_id": 20}]), "")
        .await;
    assert_eq!(s, 201, "{e}");
    let (s, rows) = app.get("/rest/v1/posts?select=title,tags(name)&order=id&tags.order=name").await;
    assert_eq!(
        (s, rows),
        (
            200,
            json!([
                {"title": "one", "tags": [{"name": "rust"}, {"name": "sql"}]},
                {"title": "two", "tags": [{"name": "sql"}]},
                {"title": "three", "tags": []}
            ])
        )
    );
    let (_, rows) = app.get("/rest/v1/tags?select=name,posts(title)&order=id&posts.order=id").await;
    assert_eq!(
        rows,
        json!([{"name": "rust", "posts": [{"title": "one"}]}, {"name": "sql", "posts": [{"title": "one"}, {"title": "two"}]}])
    );
    let (_, rows) = app.get("/rest/v1/posts?select=title,tags(count)&order=id").await;
    assert_eq!(
        rows,
        json!([{"title": "one", "tags": [{"count": 2}]}, {"title": "two", "tags": [{"count": 1}]}, {"title": "three", "tags": [{"count": 0}]}])
    );
    let (_, rows) = app.get("/rest/v1/posts?select=title,tags!inner(name)&tags.name=eq.rust").await;
    assert_eq!(rows, json!([{"title": "one", "tags": [{"name": "rust"}]}]));
    let (_, rows) = app.get("/rest/v1/posts?select=title,tags!post_tags(name)&id=eq.2").await;
    assert_eq!(rows, json!([{"title": "two", "tags": [{"name": "sql"}]}]), "the junction named as the hint");
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/posts?select=title,tags(name)&id=eq.1", None)).await;
    assert_eq!((s, rows), (200, json!([{"title": "one", "tags": []}])), "anon may not read the junction");
}

crate::both_backends!(many_to_many);
