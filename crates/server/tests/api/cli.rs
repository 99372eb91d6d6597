//! The command-line contract: serve prints URL and keys, /health, `keys --json`, `schema check`.

use crate::helpers::{run_cli, Backend, TestApp, SECRET};

#[tokio::test]
async fn health_and_keys_match_the_printed_ones() {
    let app = TestApp::spawn(Backend::Sqlite, crate::SCHEMA).await.expect("sqlite app");
    let res = app.client.get(format!("{}/health", app.url)).send().await.expect("health");
    assert_eq!(res.status().as_u16(), 200);
    let data = app.dir.path().join("data");
    let (ok, out, err) = run_cli(&["keys", "--data-dir", data.to_str().expect("path"), "--json"], &[("BASALT_JWT_SECRET", SECRET)]);
    assert!(ok, "{err}");
    let keys: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(keys["anon_key"], app.anon.as_str());
    assert_eq!(keys["service_role_key"], app.service.as_str());
}

#[test]
fn keys_without_a_configured_secret_are_stable_per_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("path");
    let (ok1, a, e) = run_cli(&["keys", "--data-dir", d, "--json"], &[]);
    let (ok2, b, _) = run_cli(&["keys", "--data-dir", d, "--json"], &[]);
    assert!(ok1 && ok2, "{e}");
    assert_eq!(a, b);
    assert!(dir.path().join("jwt_secret").exists());
}

#[test]
fn schema_check_names_table_column_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[tables.a]\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.b = { type = \"uuid\", references = \"nowhere.id\" }\n",
    )
    .expect("write");
    let (ok, _, err) = run_cli(&["schema", "check", "--schema", p.to_str().expect("path")], &[]);
    assert!(!ok);
    assert!(err.contains("line 3") && err.contains("table a, column b") && err.contains("nowhere.id"), "{err}");
    let (ok, out, _) = run_cli(&["schema", "check", "--schema", "../../examples/quickstart/basalt.toml"], &[]);
    assert!(ok, "{out}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = run_cli(&["keys", "--data-dir", dir.path().to_str().expect("path"), "--config", "/nonexistent/basalt.toml"], &[]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

#[test]
fn a_short_secret_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = run_cli(&["keys", "--data-dir", dir.path().to_str().expect("path")], &[("BASALT_JWT_SECRET", "short")]);
    assert!(!ok && err.contains("at least 32"), "{err}");
}
