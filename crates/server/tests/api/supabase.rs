//! Moving from Supabase: users imported with their bcrypt hashes, and plain SQL migrations
//! (triggers on auth.users included) run as they are.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{admin_sql, run_cli, send, Backend, TestApp};

async fn import_users(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &[]).await else { return };
    let hash = bcrypt::hash("from-supabase", 4).expect("bcrypt");
    let (id1, id2, id3) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let csv = format!(
        "id,email,encrypted_password,email_confirmed_at,raw_user_meta_data,created_at\n\
         {id1},one@example.com,{hash},2024-01-01 10:00:00.123+00,\"{{\"\"name\"\":\"\"One\"\"}}\",2024-01-01 09:00:00+00\n\
         {id2},two@example.com,{hash},2024-02-01 10:00:00+00,{{}},2024-02-01 09:00:00+00\n"
    );
    let csv_path = app.dir.path().join("users.csv");
    std::fs::write(&csv_path, csv).expect("write");
    let json_path = app.dir.path().join("users.json");
    std::fs::write(&json_path, json!([{"id": id3.to_string(), "email": "three@example.com", "encrypted_password": hash, "email_confirmed_at": "2024-03-01T00:00:00Z"}, {"id": id1.to_string(), "email": "one@example.com"}]).to_string()).expect("write");
    let target: Vec<String> = match &app.database_url {
        Some(u) => vec!["--database-url".into(), u.clone()],
        None => vec!["--data-dir".into(), app.dir.path().join("data").display().to_string()],
    };
    for (file, want) in [(&csv_path, "2 users imported, 0 skipped"), (&json_path, "1 users imported, 1 skipped")] {
        let mut args = vec!["import".to_string(), "users".into(), file.display().to_string()];
        args.extend(target.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = run_cli(&refs, &[]);
        assert!(ok && out.contains(want), "{out}{err}");
    }
    let (s, session) = send(
        app.as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "one@example.com", "password": "from-supabase"})),
    )
    .await;
    assert_eq!(s, 200, "{session}");
    assert_eq!(session["user"]["id"].as_str(), Some(id1.to_string().as_str()), "ids are kept");
    assert_eq!(session["user"]["user_metadata"]["name"], "One");
    let (s, _) = send(
        app.as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "three@example.com", "password": "from-supabase"})),
    )
    .await;
    assert_eq!(s, 200);
    let bad = app.dir.path().join("bad.csv");
    std::fs::write(&bad, "id,email\nnot-a-uuid,x@example.com\n").expect("write");
    let mut args = vec!["import".to_string(), "users".into(), bad.display().to_string()];
    args.extend(target.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = run_cli(&refs, &[]);
    assert!(!ok && err.contains("row 1"), "{err}");
}

const MIGRATION_1: &str = r#"
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text,
  updated_at timestamptz not null default now()
);
alter table public.profiles enable row level security;
create policy "own profile" on public.profiles for select using (auth.uid() = id);
grant select, insert, update, delete on public.profiles to anon, authenticated, service_role;

create function public.handle_new_user() returns trigger language plpgsql security definer set search_path = '' as $$
begin
  insert into public.profiles (id, username) values (new.id, new.raw_user_meta_data ->> 'username');
  return new;
end;
$$;
create trigger on_auth_user_created after insert on auth.users for each row execute procedure public.handle_new_user();

create function public.touch_updated_at() returns trigger language plpgsql as $$
begin new.updated_at = now(); return new; end;
$$;
create trigger profiles_updated_at before update on public.profiles for each row execute procedure public.touch_updated_at();
"#;

const MIGRATION_2: &str = "alter table public.profiles add column bio text default 'hi';
create table public.api_keys (id uuid primary key default uuid_generate_v4(), secret bytea default gen_random_bytes(16));
insert into public.api_keys default values;";

#[tokio::test]
async fn sql_migrations_run_as_they_are() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, "", &[("BASALT_AUTH_AUTOCONFIRM", "true")]).await else { return };
    let url = app.database_url.clone().expect("postgres");
    let dir = app.dir.path().join("migrations");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("20240101000000_profiles.sql"), MIGRATION_1).expect("write");
    std::fs::write(dir.join("20240102000000_bio.sql"), MIGRATION_2).expect("write");
    let d = dir.display().to_string();
    let (ok, out, err) = run_cli(&["migrate", "--sql-dir", &d, "--database-url", &url], &[]);
    assert!(ok && out.contains("2 of 2 SQL migrations applied"), "{out}{err}");
    let (ok, out, _) = run_cli(&["migrate", "--sql-dir", &d, "--database-url", &url], &[]);
    assert!(ok && out.contains("0 of 2"), "each file runs once: {out}");
    std::fs::write(dir.join("20240101000000_profiles.sql"), format!("{MIGRATION_1}\n-- edited")).expect("write");
    let (ok, _, err) = run_cli(&["migrate", "--sql-dir", &d, "--database-url", &url], &[]);
    assert!(!ok && err.contains("has changed"), "{err}");
    // The trigger on auth.users fires when Basalt signs a user up.
    let (_, _, id) = app.signup("sql@example.com", json!({"username": "sqlfan"})).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let check_url = url.clone();
    let uid = id.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let v = rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(&check_url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let row = c.query_one("select username, bio from public.profiles where id = $1::text::uuid", &[&uid]).await.expect("profile");
            (row.get::<_, Option<String>>(0), row.get::<_, Option<String>>(1))
        });
        let _ = tx.send(v);
    });
    assert_eq!(rx.recv().expect("result"), (Some("sqlfan".to_string()), Some("hi".to_string())));
    // Deleting the user cascades to the profile.
    let (s, _) = send(app.req(Method::DELETE, &format!("/auth/v1/admin/users/{id}"))).await;
    assert_eq!(s, 200);
    admin_sql(&url, &format!("DO $$ BEGIN IF EXISTS (SELECT 1 FROM public.profiles WHERE id = '{id}') THEN RAISE EXCEPTION 'profile survived'; END IF; END $$"));
}

crate::both_backends!(import_users);

const EXISTING: &str = r#"
create type mood as enum ('happy', 'sad');
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text,
  mood mood default 'happy'
);
comment on table public.profiles is 'One row per user';
alter table public.profiles enable row level security;
create policy "own profile" on public.profiles for select using (auth.uid() = id);
grant select, insert, update, delete on public.profiles to anon, authenticated, service_role;
create function public.handle_new_user() returns trigger language plpgsql security definer set search_path = '' as $$
begin
  insert into public.profiles (id, username) values (new.id, new.raw_user_meta_data ->> 'username');
  return new;
end;
$$;
create trigger on_auth_user_created after insert on auth.users for each row execute procedure public.handle_new_user();
create function public.add(a integer, b integer default 10) returns integer language sql immutable as $$ select a + b $$;
create function public.whoami() returns uuid language sql stable as $$ select auth.uid() $$;
create function public.claim_sub() returns text language sql stable as $$ select current_setting('request.jwt.claim.sub', true) $$;
create function public.moods(m mood) returns setof public.profiles language sql stable as $$ select * from public.profiles where mood = m $$;
create table public.posts (id bigint primary key, author uuid references public.profiles (id) on delete cascade, title text);
alter table public.posts enable row level security;
create policy "posts are public" on public.posts for select using (true);
grant select on public.posts to anon, authenticated, service_role;
create function public.posts_by(who uuid) returns setof public.posts language sql stable as $$ select * from public.posts where author = who $$;
create function public.echo(json) returns json language sql immutable as $$ select $1 $$;
create function public.touch(note text) returns void language plpgsql as $$ begin perform 1; end $$;
create function public.hdr() returns json language sql stable as $$
  select json_build_object('method', current_setting('request.method', true), 'path', current_setting('request.path', true),
    'app', current_setting('request.headers', true)::json ->> 'x-app', 'session', current_setting('request.cookies', true)::json ->> 'session')
$$;
create table public.tags (id bigint primary key, label text default 'untitled');
grant select, insert, update, delete on public.tags to service_role;
create function public.pairs(n integer) returns table (i integer, sq integer) language sql immutable as $$ select g, g * g from generate_series(1, n) g $$;
create table public.docs (id bigint primary key, body text, tsv tsvector generated always as (to_tsvector('english', body)) stored);
grant select on public.docs to service_role;
insert into public.docs (id, body) values (1, 'The fat cats ate the rats'), (2, 'A stellar explosion');
"#;

/// An existing Supabase-style database served as it is: introspected tables and types,
/// its own policies and triggers, its functions at /rpc, and DDL picked up without restart.
#[tokio::test]
async fn serves_an_existing_database() {
    let Some(first) = TestApp::spawn_with(Backend::Postgres, "", &[]).await else { return };
    let url = first.database_url.clone().expect("postgres");
    let dir = first.dir.path().join("sql");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("001_existing.sql"), EXISTING).expect("write");
    let (ok, out, err) = run_cli(&["migrate", "--sql-dir", &dir.display().to_string(), "--database-url", &url], &[]);
    assert!(ok, "{out}{err}");
    let app = TestApp::spawn_on(&url, "", &[("BASALT_SCHEMA_SOURCE", "postgres"), ("BASALT_AUTH_AUTOCONFIRM", "true")]).await;
    let (token, _, id) = app.signup("intro@example.com", json!({"username": "intro"})).await;
    app.signup("other@example.com", json!({"username": "other"})).await;
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/profiles?select=username,mood", Some(&token))).await;
    assert_eq!((s, rows), (200, json!([{"username": "intro", "mood": "happy"}])), "the database's own policy applies");
    let (_, rows) = send(app.as_user(Method::GET, "/rest/v1/profiles", None)).await;
    assert_eq!(rows, json!([]));
    let (s, rows) = app.get("/rest/v1/profiles?select=username&mood=eq.happy&order=username").await;
    assert_eq!((s, rows), (200, json!([{"username": "intro"}, {"username": "other"}])), "enum columns filter as text");
    let (_, doc) = app.get("/rest/v1/").await;
    assert_eq!(doc["definitions"]["profiles"]["description"], "One row per user");
    // missing=default takes the database's own default on an introspected table.
    let (s, rows) = app
        .post(
            "/rest/v1/tags?columns=\"id\",\"label\"&select=label",
            json!([{"id": 1}, {"id": 2, "label": "x"}]),
            "missing=default,return=representation",
        )
        .await;
    assert_eq!((s, rows), (201, json!([{"label": "untitled"}, {"label": "x"}])));
    // RPC: scalar, defaults, GET, the caller's identity, sets, void, unknown.
    let (s, v) = app.post("/rest/v1/rpc/add", json!({"a": 1, "b": 2}), "").await;
    assert_eq!((s, v), (200, json!(3)));
    let (s, v) = app.get("/rest/v1/rpc/add?a=5").await;
    assert_eq!((s, v), (200, json!(15)));
    let (s, v) = send(app.as_user(Method::POST, "/rest/v1/rpc/whoami", Some(&token)).json(&json!({}))).await;
    assert_eq!((s, v), (200, json!(id)));
    // `request.jwt.claim.sub` (which auth.uid() reads first) is the caller's, and empty for a
    // key without `sub`: never the previous caller's on a reused connection.
    for _ in 0..3 {
        let (s, v) = send(app.as_user(Method::GET, "/rest/v1/rpc/claim_sub", Some(&token))).await;
        assert_eq!((s, v), (200, json!(id)));
        let (s, v) = app.get("/rest/v1/rpc/claim_sub").await;
        assert_eq!((s, v), (200, json!("")));
    }
    let (s, v) = app.post("/rest/v1/rpc/moods", json!({"m": "happy"}), "").await;
    assert_eq!((s, v.as_array().map(Vec::len)), (200, Some(2)));
    // Set results take select, filters, order, ranges and counts, as PostgREST's.
    let (s, v) = app.post("/rest/v1/rpc/moods?select=username&order=username.desc", json!({"m": "happy"}), "").await;
    assert_eq!((s, v), (200, json!([{"username": "other"}, {"username": "intro"}])));
    // Full-text search on a tsvector column, as it is, and on a text column through to_tsvector.
    for (q, want) in [
        ("tsv=fts.cat %26 rat", json!([{"id": 1}])),
        ("tsv=wfts(english).explosions -fat", json!([{"id": 2}])),
        ("tsv=phfts.fat cat", json!([{"id": 1}])),
        ("body=plfts(simple).stellar explosion", json!([{"id": 2}])),
        ("tsv=not.fts.dog&order=id", json!([{"id": 1}, {"id": 2}])),
    ] {
        let (s, rows) = app.get(&format!("/rest/v1/docs?select=id&{q}")).await;
        assert_eq!((s, rows), (200, want), "{q}");
    }
    // A function returning a table's rows embeds what the table embeds (to-many and to-one),
    // through the embedded table's own policies.
    admin_sql(&url, &format!("insert into public.posts values (1, '{id}', 'first'), (2, '{id}', 'second')"));
    let (s, v) =
        app.post("/rest/v1/rpc/moods?select=username,posts(title)&order=username&posts.order=id.desc", json!({"m": "happy"}), "").await;
    let want = json!([{"username": "intro", "posts": [{"title": "second"}, {"title": "first"}]}, {"username": "other", "posts": []}]);
    assert_eq!((s, v), (200, want));
    let (s, v) =
        send(app.as_user(Method::GET, &format!("/rest/v1/rpc/posts_by?who={id}&select=title,profiles(username)&order=id"), Some(&token)))
            .await;
    assert_eq!(
        (s, v),
        (200, json!([{"title": "first", "profiles": {"username": "intro"}}, {"title": "second", "profiles": {"username": "intro"}}]))
    );
    let (s, v) =
        send(app.as_user(Method::GET, &format!("/rest/v1/rpc/posts_by?who={id}&select=title,profiles(username)&id=eq.1"), None)).await;
    assert_eq!((s, v), (200, json!([{"title": "first", "profiles": null}])), "anon sees the post, not the profile");
    let (s, e) = app.get("/rest/v1/rpc/pairs?n=2&select=i,posts(title)").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST200")), "a RETURNS TABLE result has no relationships: {e}");
    // A single unnamed json argument takes the body whole, as PostgREST passes it.
    let (s, v) = app.post("/rest/v1/rpc/echo", json!([1, {"a": "b"}]), "").await;
    assert_eq!((s, v), (200, json!([1, {"a": "b"}])));
    let (s, v) = app.post("/rest/v1/rpc/echo", json!({"any": "keys"}), "").await;
    assert_eq!((s, v), (200, json!({"any": "keys"})));
    let (s, e) = app.post("/rest/v1/rpc/add", json!([1, 2]), "").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("PGRST102")), "{e}");
    let (s, v) = app.get("/rest/v1/rpc/pairs?n=4&sq=gt.3&order=i.desc&select=i").await;
    assert_eq!((s, v), (200, json!([{"i": 4}, {"i": 3}, {"i": 2}])));
    let res = app.req(Method::GET, "/rest/v1/rpc/pairs?n=5&limit=2").header("prefer", "count=exact").send().await.expect("send");
    assert_eq!((res.status().as_u16(), res.headers()["content-range"].to_str().expect("h")), (206, "0-1/5"));
    // The request as SQL sees it, as PostgREST sets it.
    let (s, v) = send(app.req(Method::GET, "/rest/v1/rpc/hdr").header("x-app", "demo").header("cookie", "session=abc; other=1")).await;
    assert_eq!((s, v), (200, json!({"method": "GET", "path": "/rpc/hdr", "app": "demo", "session": "abc"})));
    let (s, _) = app.post("/rest/v1/rpc/touch", json!({"note": "x"}), "").await;
    assert_eq!(s, 204);
    let (s, e) = app.post("/rest/v1/rpc/nope", json!({"x": 1}), "").await;
    assert_eq!((s, e["code"].as_str()), (404, Some("PGRST202")));
    let (s, e) = app.post("/rest/v1/rpc/add", json!({"a": "not a number"}), "").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("22P02")));
    // DDL made outside Basalt is picked up without a restart (event trigger + NOTIFY).
    admin_sql(&url, "alter table public.profiles add column age integer default 42");
    let mut last = (0, json!(null));
    for _ in 0..50 {
        last = app.get("/rest/v1/profiles?select=age&limit=1").await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last, (200, json!([{"age": 42}])));
    drop(app);
}
