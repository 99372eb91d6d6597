//! `grant_type=id_token` (`signInWithIdToken`) for Google and Apple, with tokens signed by a
//! test key that a local stand-in publishes as the provider's JWKS.

use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, Backend, TestApp};

/// A 2048-bit RSA key made for these tests (PKCS#1 DER, base64) and its public modulus.
const KEY_DER: &str = "MIIEoAIBAAKCAQEAxXHEmvyNGjFnqw536rg0k5X5wMr1KLBLsGOkZqOCVJJiIjJJORhRRrPPeBOw4MY3d+zkkGNWixc4F8QpimAfn2sSEHO7A3o0Q7y3Nfi66m7bKDOzGV2GAqlIKwT/mGO5uKRFB/VTXLJwOxDPz+lFbr6DLINmvagP5UUOk4znMtyX9KH5ZFb+fU0ernuBs1Jlbk54XsiWcSC8YuFYJuttnp4dU0XDRm4v6SIH4IaEOasI2XDKTj2dtryXstFK2gotTvEaNQe7T6CLOMl1EXOiMbal1F9rkrPpEKUIz/C+7uA1UePIc7tWNchAtNxc+YieqcxFgc+MpJUQdZyDGJ8seQIDAQABAoH/BPjKtgoc3uv6/gX/PwnbSRL5KVPzBiohK4IyQZpBBMS9Krq03VINJ5qfh/RAH/sm85BssP89F8ywKp/l6+PSDJrFnj/eFbPCpk1xGMGvPGW78VTuO1VIs79PhDOFKd7rSb+QD7oZLQD126t52VAmdANziibXNArVEn6c9jWj059vBqIAgc068HZv4cdHvjDRnhGXbQMkQagGIsnDM3zkNZshJWeOUEkmLA5nNgP2CuMZ+ktBM3uwsr0RQ/I39Vn3xMh1ZGLubNRyb+Kut0RoNnKJLSI+MMEdryXpTO8VcyJLDf+iNL4wPzP0CxHgDWk+XJQxSN3NREEgwYNVKGERAoGBAPscczMNT/HlFlKFZd1rBvGiLP9LqfvYKDvWuFmxr4g3rorU+QTVFikj+B9KmV1xsm/aieTxwjisMzpQf35TVvS8GDcx74qQM32hEf3twAuzrP5hqSlucjALY1Kz94rZxFUUTfMhVCZbWiCz93qK7UorzTWP7ziUrhxCzHS5FtfxAoGBAMlJ1ybm+spLDwg6Dn3ZZ35ApCqTm5INfge8Cv13WNcvubGc3Ho2ZCTPcha0GssgQk2FiUdrJaYr27aUIMtaFHcr/InLjdOIYGb7RBeiggdVuN7P9yk2F8VjuU8ybdeM0PzqYELqGR3R+mLQdqkaMfgcF9vssw4/TyEsgV7RF+UJAoGACE+LvH/PSokzcO27TlWxeCPO63AcoxonUrurhERuM8rr+upLh45p2li3aIm2g7I0nqET+UDLFccVNvPdFFg7w4PKJWGAtQxKt/ixuL66oWiD7DNdPuLJ4q8tzVnpcm38ong2kDplJ5PUasqqASNB8Td75i7qUuwQyxym2aIakHECgYBWpxAVMjhin79f5kZYzR+tjTxfC95cGKzZvYzpotg/As+o84NCpWmlIxzVQ0GJkmCYqNT5RtoVWCokxk373NKUnv3/f/6VQs9lZePhXNcnOzLz0IlxV1USZ6TdwDLjKT7KskcwZ0DawotMwLtkft9mFQn8ZkCK8JwrBtLGs7LaqQKBgDgmo5F+zTlm7pDL9ck9aiIxyLY/qWjndsNyFb2Cmvd5ATlKrk72zZwtTzWhxbU0vLLreDUW7o+e+QbPK4nGfiqOjZe8+CdpAQ5eD2tcj4fZJDEJuOgbXy3InlvT1/mPuCLmDu0BtvrQwqICz6RO3qxepetd/HxL1Fw9T7dLkNqH";
const KEY_N: &str = "xXHEmvyNGjFnqw536rg0k5X5wMr1KLBLsGOkZqOCVJJiIjJJORhRRrPPeBOw4MY3d-zkkGNWixc4F8QpimAfn2sSEHO7A3o0Q7y3Nfi66m7bKDOzGV2GAqlIKwT_mGO5uKRFB_VTXLJwOxDPz-lFbr6DLINmvagP5UUOk4znMtyX9KH5ZFb-fU0ernuBs1Jlbk54XsiWcSC8YuFYJuttnp4dU0XDRm4v6SIH4IaEOasI2XDKTj2dtryXstFK2gotTvEaNQe7T6CLOMl1EXOiMbal1F9rkrPpEKUIz_C-7uA1UePIc7tWNchAtNxc-YieqcxFgc-MpJUQdZyDGJ8seQ";

fn sign(claims: &Value, kid: &str) -> String {
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD.decode(KEY_DER).expect("der");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der)).expect("sign")
}

async fn fake_jwks() -> String {
    let keys = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": KEY_N, "e": "AQAB"}]});
    let app = Router::new().route("/keys", get(move || async move { Json(keys.clone()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

async fn grant(app: &TestApp, body: Value) -> (u16, Value) {
    send(app.as_user(Method::POST, "/auth/v1/token?grant_type=id_token", None).json(&body)).await
}

async fn id_tokens(b: Backend) {
    let jwks = fake_jwks().await;
    let env = [
        ("BASALT_AUTH_EXTERNAL_GOOGLE_CLIENT_ID", "web-client.apps.googleusercontent.com"),
        ("BASALT_AUTH_EXTERNAL_GOOGLE_JWKS_URL", jwks.as_str()),
        ("BASALT_AUTH_EXTERNAL_APPLE_CLIENT_ID", "com.example.app"),
        ("BASALT_AUTH_EXTERNAL_APPLE_JWKS_URL", jwks.as_str()),
    ];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    let now = chrono::Utc::now().timestamp();
    let google = |aud: &str, exp: i64| {
        json!({"iss": "https://accounts.google.com", "aud": aud, "sub": "g-777", "email": "gwen@example.com",
               "email_verified": true, "name": "Gwen", "iat": now, "exp": exp})
    };
    let token = sign(&google("web-client.apps.googleusercontent.com", now + 600), "k1");
    let (s, session) = grant(&app, json!({"provider": "google", "id_token": token})).await;
    assert_eq!(s, 200, "{session}");
    let user = &session["user"];
    assert_eq!((user["email"].as_str(), user["identities"][0]["provider"].as_str()), (Some("gwen@example.com"), Some("google")));
    assert_eq!((user["identities"][0]["id"].as_str(), user["user_metadata"]["full_name"].as_str()), (Some("g-777"), Some("Gwen")));
    let first = user["id"].clone();
    let (_, again) = grant(&app, json!({"provider": "google", "id_token": token})).await;
    assert_eq!(again["user"]["id"], first, "the same Google account, the same user");

    for (why, token) in [
        ("another app's token", sign(&google("someone-else", now + 600), "k1")),
        ("expired", sign(&google("web-client.apps.googleusercontent.com", now - 600), "k1")),
        ("a key the provider does not publish", sign(&google("web-client.apps.googleusercontent.com", now + 600), "k2")),
        ("not a JWT", "nope".to_string()),
    ] {
        let (s, e) = grant(&app, json!({"provider": "google", "id_token": token})).await;
        assert_eq!((s, e["code"].as_str()), (400, Some("bad_jwt")), "{why}: {e}");
    }
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let (s, _) = grant(&app, json!({"provider": "google", "id_token": forged})).await;
    assert_eq!(s, 400, "a bad signature");
    let (s, e) = grant(&app, json!({"provider": "github", "id_token": token})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")));

    // Apple: the nonce is its SHA-256, and email_verified a string.
    let raw_nonce = "a-raw-nonce";
    use sha2::Digest;
    let hashed: String = sha2::Sha256::digest(raw_nonce.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let apple = sign(
        &json!({"iss": "https://appleid.apple.com", "aud": "com.example.app", "sub": "001234.abcd", "email": "ap@privaterelay.appleid.com",
                "email_verified": "true", "nonce": hashed, "iat": now, "exp": now + 600}),
        "k1",
    );
    let (s, e) = grant(&app, json!({"provider": "apple", "id_token": apple})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_jwt")), "the nonce is required: {e}");
    let (s, e) = grant(&app, json!({"provider": "apple", "id_token": apple, "nonce": "another"})).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = grant(&app, json!({"provider": "apple", "id_token": apple, "nonce": hashed})).await;
    assert_eq!(s, 400, "the hash the token carries is not the nonce: {e}");
    let no_iss = sign(&json!({"aud": "web-client.apps.googleusercontent.com", "sub": "g-9", "exp": now + 600}), "k1");
    let (s, e) = grant(&app, json!({"provider": "google", "id_token": no_iss})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_jwt")), "iss is required: {e}");
    let (s, session) = grant(&app, json!({"provider": "apple", "id_token": apple, "nonce": raw_nonce})).await;
    assert_eq!(s, 200, "{session}");
    assert_eq!(
        (session["user"]["email"].as_str(), session["user"]["email_confirmed_at"].is_string()),
        (Some("ap@privaterelay.appleid.com"), true)
    );
    let (s, e) = send(app.as_user(Method::GET, "/auth/v1/authorize?provider=apple", None)).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")), "Apple only through ID tokens");
}

crate::both_backends!(id_tokens);
