//! Every example app under examples/ migrates and boots on both backends.

use crate::helpers::{Backend, TestApp};

async fn examples_boot(b: Backend) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut dirs: Vec<_> =
        std::fs::read_dir(&root).expect("examples").flatten().map(|e| e.path()).filter(|p| p.join("basalt.toml").exists()).collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "the quickstart and the five seed apps: {dirs:?}");
    for dir in dirs {
        let schema = std::fs::read_to_string(dir.join("basalt.toml")).expect("schema");
        // The examples' [server] listen address would collide; the test passes its own.
        let Some(app) = TestApp::spawn_with(b, &schema, &[]).await else { return };
        let catalog = basalt_tables(&schema);
        let (s, doc) = app.get("/rest/v1/").await;
        assert_eq!(s, 200, "{}", dir.display());
        for t in catalog {
            assert!(doc["definitions"].get(&t).is_some(), "{}: table {t} is served", dir.display());
            let (s, _) = app.get(&format!("/rest/v1/{t}?limit=1")).await;
            assert_eq!(s, 200, "{}: GET {t}", dir.display());
        }
    }
}

/// parakeet-ai audits its tables: a user made by the admin API leaves entries for the rows its
/// sign-up hooks insert, in the same transaction.
async fn parakeet_audits_signup_rows(b: Backend) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/parakeet-ai/basalt.toml");
    let schema = std::fs::read_to_string(root).expect("schema");
    let Some(app) = TestApp::spawn_with(b, &schema, &[]).await else { return };
    let (s, user) = app.post("/auth/v1/admin/users", serde_json::json!({"email": "p@example.com", "password": "password-123"}), "").await;
    assert_eq!(s, 200, "{user}");
    let id = user["id"].as_str().expect("id");
    for table in ["users", "user_settings"] {
        let (s, log) = app.get(&format!("/audit/v1/entries?table={table}")).await;
        assert_eq!(s, 200, "{log}");
        assert_eq!(log.as_array().map(Vec::len), Some(1), "{table}: {log}");
        assert_eq!(log[0]["op"], "INSERT");
        let owner = if table == "users" { &log[0]["new_row"]["id"] } else { &log[0]["new_row"]["user_id"] };
        assert_eq!(owner, id, "{log}");
    }
    let (_, v) = app.get("/audit/v1/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

/// Table names declared in a schema file.
fn basalt_tables(schema: &str) -> Vec<String> {
    let v: toml::Table = toml::from_str(schema).expect("toml");
    v.get("tables").and_then(|t| t.as_table()).map(|t| t.keys().cloned().collect()).unwrap_or_default()
}

crate::both_backends!(examples_boot, parakeet_audits_signup_rows);

/// Each example's SCHEMA.md and database.types.ts are what `basalt schema docs` and
/// `basalt schema types` print for its schema: the docs cannot drift from the schema.
#[test]
fn example_docs_and_types_match_their_schemas() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for dir in std::fs::read_dir(&root).expect("examples").flatten().map(|e| e.path()).filter(|p| p.join("basalt.toml").exists()) {
        let schema = std::fs::read_to_string(dir.join("basalt.toml")).expect("schema");
        let catalog = basalt_schema::parse_schema(&schema).expect("valid schema");
        for (file, want, command) in [
            ("SCHEMA.md", basalt_schema::markdown::markdown(&catalog), "docs"),
            ("database.types.ts", basalt_schema::typescript::typescript(&catalog), "types"),
        ] {
            let have = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert_eq!(
                have.trim_end(),
                want.trim_end(),
                "{} is stale: run `basalt schema {command} --schema {}/basalt.toml > {}/{file}`",
                dir.join(file).display(),
                dir.display(),
                dir.display()
            );
        }
    }
}
