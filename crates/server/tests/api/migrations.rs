//! Migrations: add columns and indexes in place, refuse destructive steps unless allowed,
//! `--dry-run` prints the plan, history is recorded.

use serde_json::json;

use crate::helpers::{fresh_database, run_cli, Backend, DropDatabase, TestApp};

const V1: &str = "[tables.items]\ncolumns.id = { type = \"bigint\", primary_key = true }\ncolumns.name = { type = \"text\" }\n";
const V2: &str = "[tables.items]\ncolumns.id = { type = \"bigint\", primary_key = true }\ncolumns.name = { type = \"text\" }\ncolumns.qty = { type = \"integer\", not_null = true, default = \"0\" }\ncolumns.sku = { type = \"text\", unique = true }\ncolumns.at = { type = \"timestamptz\", default = \"now()\" }\nindexes = [{ columns = [\"qty desc\"] }]\n";

/// The CLI's arguments for the backend, and the database to drop afterwards (PostgreSQL).
fn target(b: Backend, dir: &std::path::Path) -> Option<(Vec<String>, Option<DropDatabase>)> {
    match b {
        Backend::Sqlite => Some((vec!["--data-dir".into(), dir.join("data").display().to_string()], None)),
        Backend::Postgres => {
            fresh_database().map(|(url, admin, name)| (vec!["--database-url".into(), url], Some(DropDatabase { admin, name })))
        }
    }
}

async fn evolve(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((t, _drop)) = target(b, dir.path()) else { return };
    let (v1, v2) = (dir.path().join("v1.toml"), dir.path().join("v2.toml"));
    std::fs::write(&v1, V1).expect("write");
    std::fs::write(&v2, V2).expect("write");
    let migrate = |schema: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["migrate".to_string(), "--schema".into(), schema.display().to_string()];
        args.extend(t.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&refs, &[])
    };
    let (ok, out, err) = migrate(&v1, &[]);
    assert!(ok && out.contains("create table items"), "{out}{err}");
    let (ok, out, _) = migrate(&v1, &[]);
    assert!(ok && out.contains("already matches"), "{out}");
    let (ok, out, err) = migrate(&v2, &["--dry-run"]);
    assert!(ok && out.contains("add column items.qty") && out.contains("create index items_qty_idx") && out.contains("SQL"), "{out}{err}");
    let (ok, out, err) = migrate(&v2, &[]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = migrate(&v1, &[]);
    assert!(!ok && err.contains("destructive") && err.contains("drop column items.qty"), "{out}{err}");
    let (ok, _, err) = migrate(&v1, &["--allow-destructive"]);
    assert!(ok, "{err}");
}

/// Data survives a migration that adds a column with a non-constant default (a rebuild on SQLite).
async fn data_survives(b: Backend) {
    let Some(app) = TestApp::spawn(b, V1).await else { return };
    app.post("/rest/v1/items", json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]), "").await;
    let (data, url) = (app.dir.path().join("data"), app.database_url.clone());
    let v2 = app.dir.path().join("v2.toml");
    std::fs::write(&v2, V2).expect("write");
    let mut args = vec!["migrate".to_string(), "--schema".into(), v2.display().to_string()];
    match url {
        Some(u) => args.extend(["--database-url".to_string(), u]),
        None => args.extend(["--data-dir".to_string(), data.display().to_string()]),
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run_cli(&refs, &[]);
    assert!(ok, "{out}{err}");
    let (s, rows) = app.get("/rest/v1/items?select=id,name&order=id").await;
    assert_eq!((s, rows), (200, json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])));
}

crate::both_backends!(evolve, data_survives);
