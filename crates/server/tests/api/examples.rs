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

/// Table names declared in a schema file.
fn basalt_tables(schema: &str) -> Vec<String> {
    let v: toml::Table = toml::from_str(schema).expect("toml");
    v.get("tables").and_then(|t| t.as_table()).map(|t| t.keys().cloned().collect()).unwrap_or_default()
}

crate::both_backends!(examples_boot);
