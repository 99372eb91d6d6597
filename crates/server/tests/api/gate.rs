//! Keys and tokens at the door: apikey required, JWTs verified, anon denied table data.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{send, Backend, TestApp};

async fn gate(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let url = format!("{}/rest/v1/todos", app.url);
    let (s, body) = send(app.client.get(&url)).await;
    assert_eq!((s, body), (401, json!({"message": "No API key found in request"})));
    let (s, body) = send(app.client.get(&url).header("apikey", "nonsense")).await;
    assert_eq!((s, body["message"].as_str()), (401, Some("Invalid authentication credentials")));
    // A key signed with another secret.
    let other = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiaXNzIjoiYmFzYWx0IiwiaWF0IjoxNzM1Njg5NjAwLCJleHAiOjIzNjY4NDE2MDB9.Cz12wozabQnG7fVbfCY0eVCoaoHDIwP9K_wTpCl0EeU";
    let (s, _) = send(app.client.get(&url).header("apikey", other)).await;
    assert_eq!(s, 401);
    // anon: row-level security with no policy for anon shows no rows and refuses writes.
    let (s, body) = send(app.client.get(&url).header("apikey", &app.anon)).await;
    assert_eq!((s, body), (200, json!([])));
    let (s, body) = send(app.client.post(&url).header("apikey", &app.anon).json(&json!({"title": "x"}))).await;
    assert_eq!((s, body["code"].as_str()), (401, Some("42501")));
    // anon key plus a bad bearer token: PGRST301; alg none refused.
    let (s, body) = send(app.client.get(&url).header("apikey", &app.anon).header("authorization", format!("Bearer {other}"))).await;
    assert_eq!((s, body["code"].as_str()), (401, Some("PGRST301")));
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjoyMzY2ODQxNjAwfQ.";
    let (s, _) = send(app.client.get(&url).header("apikey", &app.anon).header("authorization", format!("Bearer {none}"))).await;
    assert_eq!(s, 401);
    // service role through ?apikey= too
    let (s, _) = send(app.client.get(format!("{url}?apikey={}", app.service))).await;
    assert_eq!(s, 200);
    let (s, doc) = app.get("/rest/v1/").await;
    assert_eq!((s, doc["swagger"].as_str()), (200, Some("2.0")));
    assert!(doc["definitions"]["todos"]["properties"]["tags"].is_object());
    assert_eq!(doc["paths"]["/todos"]["put"]["parameters"][0]["name"], "id", "PUT names the primary key");
    let (s, e) = send(app.req(Method::PUT, "/rest/v1/todos").json(&json!({"title": "x"}))).await;
    assert_eq!((s, e["code"].as_str()), (405, Some("PGRST105")), "PUT without the key");
}

crate::both_backends!(gate);
