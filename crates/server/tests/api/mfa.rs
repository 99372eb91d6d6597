//! MFA with TOTP, as GoTrue's `/factors`: enroll, challenge, verify to `aal2`, codes spent
//! once, the `aal2` rules on enrolling and unenrolling, and the admin API.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, Backend, TestApp};

const SETTINGS: &[(&str, &str)] = &[("BASALT_AUTH_AUTOCONFIRM", "true")];

/// The code an authenticator app shows now for a base32 secret.
fn code(secret: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("base32 secret");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret.as_ref().to_vec())
        .build_noncompliant()
        .generate(now)
        .to_string()
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("claims")
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    send(app.as_user(method, path, Some(token)).json(&body)).await
}

async fn totp_factors(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, SETTINGS).await else { return };
    let (aal1, refresh, id) = app.signup("mfa@example.com", json!({})).await;
    // A second session of the same user, still at aal1 after the first one verifies.
    let (s, other) = send(
        app.as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "mfa@example.com", "password": "password-123"})),
    )
    .await;
    assert_eq!(s, 200);

    let (s, e) = call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "sms"})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")));
    let (s, e) = call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "phone"})).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("mfa_phone_enroll_not_enabled")));
    let (s, f) =
        call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "totp", "friendly_name": "phone app", "issuer": "Acme"}))
            .await;
    assert_eq!(s, 200, "{f}");
    let (factor, secret) = (f["id"].as_str().expect("id").to_string(), f["totp"]["secret"].as_str().expect("secret").to_string());
    assert_eq!((f["type"].as_str(), f["friendly_name"].as_str(), secret.len()), (Some("totp"), Some("phone app"), 32));
    let uri = f["totp"]["uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/Acme:mfa%40example.com?") && uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(f["totp"]["qr_code"].as_str().expect("qr").contains("<svg"), "an SVG QR code");
    let (s, e) = call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "totp", "friendly_name": "phone app"})).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("mfa_factor_name_conflict")));
    for _ in 0..2 {
        let (s, e) = call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "totp"})).await;
        assert_eq!(s, 200, "blank names may repeat: {e}");
    }
    let (_, user) = call(&app, Method::GET, "/auth/v1/user", &aal1, json!({})).await;
    assert_eq!((user["factors"][0]["status"].as_str(), user["factors"][0].get("secret")), (Some("unverified"), None));

    // Challenge, then verify: a wrong code, the right one, the right one again.
    let (s, c) = call(&app, Method::POST, &format!("/auth/v1/factors/{factor}/challenge"), &aal1, json!({})).await;
    assert_eq!((s, c["type"].as_str()), (200, Some("totp")), "{c}");
    let challenge = c["id"].as_str().expect("challenge id").to_string();
    let now = chrono::Utc::now().timestamp();
    assert!((now + 290..=now + 310).contains(&c["expires_at"].as_i64().expect("expires_at")));
    let verify = |challenge: &str, code: &str| json!({"challenge_id": challenge, "code": code});
    let path = format!("/auth/v1/factors/{factor}/verify");
    let right = code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().expect("digits") + 1) % 1_000_000);
    let (s, e) = call(&app, Method::POST, &path, &aal1, verify(&challenge, &wrong)).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("mfa_verification_failed")));
    let (s, e) = call(&app, Method::POST, &path, &aal1, verify(&challenge, "")).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")));
    let (s, e) = call(&app, Method::POST, &path, &aal1, verify(&uuid::Uuid::new_v4().to_string(), &right)).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("mfa_factor_not_found")));
    let (s, session) = call(&app, Method::POST, &path, &aal1, verify(&challenge, &right)).await;
    assert_eq!(s, 200, "{session}");
    let aal2 = session["access_token"].as_str().expect("access token").to_string();
    let c2 = claims(&aal2);
    assert_eq!(
        (c2["aal"].as_str(), c2["amr"][0]["method"].as_str(), c2["amr"][1]["method"].as_str()),
        (Some("aal2"), Some("totp"), Some("password"))
    );
    assert_eq!(c2["session_id"], claims(&aal1)["session_id"], "the same session, raised");
    assert_eq!(session["user"]["factors"][0]["status"], "verified");
    let (s, e) = call(&app, Method::POST, &path, &aal1, verify(&challenge, &right)).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("mfa_challenge_expired")), "a challenge is spent once");
    let (_, c) = call(&app, Method::POST, &format!("/auth/v1/factors/{factor}/challenge"), &aal2, json!({})).await;
    let (s, e) = call(&app, Method::POST, &path, &aal2, verify(c["id"].as_str().expect("id"), &right)).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("mfa_verification_failed")), "a code is accepted once");

    // The refresh token from verify keeps aal2; the aal1 ones of this session are gone, and
    // so is the user's other session, which never passed the second factor.
    let (s, r) = send(
        app.as_user(Method::POST, "/auth/v1/token?grant_type=refresh_token", None)
            .json(&json!({"refresh_token": session["refresh_token"]})),
    )
    .await;
    assert_eq!((s, claims(r["access_token"].as_str().expect("token"))["aal"].as_str()), (200, Some("aal2")), "{r}");
    for old in [refresh.as_str(), other["refresh_token"].as_str().expect("other")] {
        let (s, e) =
            send(app.as_user(Method::POST, "/auth/v1/token?grant_type=refresh_token", None).json(&json!({"refresh_token": old}))).await;
        assert_eq!((s, e["code"].as_str()), (400, Some("refresh_token_not_found")), "{e}");
    }

    // With a verified factor, enrolling or unenrolling needs aal2.
    let (s, e) = call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "totp", "friendly_name": "backup"})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("insufficient_aal")));
    let (s, spare) = call(&app, Method::POST, "/auth/v1/factors", &aal2, json!({"factor_type": "totp", "friendly_name": "backup"})).await;
    assert_eq!(s, 200, "{spare}");
    let (s, e) = call(&app, Method::DELETE, &format!("/auth/v1/factors/{factor}"), &aal1, json!({})).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("insufficient_aal")));
    let (s, e) = call(&app, Method::DELETE, "/auth/v1/factors/not-a-uuid", &aal2, json!({})).await;
    assert_eq!(s, 404, "{e}");
    let (s, gone) = call(&app, Method::DELETE, &format!("/auth/v1/factors/{factor}"), &aal2, json!({})).await;
    assert_eq!((s, gone), (200, json!({"id": factor})));
    // No verified factor is left: the next refresh of the session says aal1.
    let (_, r2) = send(
        app.as_user(Method::POST, "/auth/v1/token?grant_type=refresh_token", None).json(&json!({"refresh_token": r["refresh_token"]})),
    )
    .await;
    assert_eq!(claims(r2["access_token"].as_str().expect("token"))["aal"], "aal1", "{r2}");

    // Another user cannot see or challenge the factor.
    let (stranger, _, _) = app.signup("stranger@example.com", json!({})).await;
    let spare_id = spare["id"].as_str().expect("id");
    let (s, e) = call(&app, Method::POST, &format!("/auth/v1/factors/{spare_id}/challenge"), &stranger, json!({})).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("mfa_factor_not_found")));

    // Admin: list and delete.
    let (s, list) = send(app.req(Method::GET, &format!("/auth/v1/admin/users/{id}/factors"))).await;
    assert_eq!((s, list.as_array().map(Vec::len), list[0]["friendly_name"].as_str()), (200, Some(1), Some("backup")));
    let (s, deleted) = send(app.req(Method::DELETE, &format!("/auth/v1/admin/users/{id}/factors/{spare_id}"))).await;
    assert_eq!((s, deleted["id"].as_str()), (200, Some(spare_id)));
    let (s, e) = send(app.as_user(Method::GET, &format!("/auth/v1/admin/users/{id}/factors"), Some(&aal2))).await;
    assert_eq!(s, 403, "not for users: {e}");
    let (_, user) = call(&app, Method::GET, "/auth/v1/user", &aal2, json!({})).await;
    assert!(user.get("factors").is_none(), "no factors, no field: {user}");
}

crate::both_backends!(totp_factors);

const VAULT_SCHEMA: &str = r#"
[tables.secrets]
columns.id    = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.owner = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users", on_delete = "cascade" }
columns.body  = { type = "text" }

[[tables.secrets.policies]]
name = "own secrets, behind a second factor"
command = "all"
roles = ["authenticated"]
using = "owner = auth.uid() and auth.jwt() ->> 'aal' = 'aal2'"
with_check = "owner = auth.uid() and auth.jwt() ->> 'aal' = 'aal2'"
"#;

/// A policy can ask for the second factor: `auth.jwt() ->> 'aal' = 'aal2'`, on both backends.
async fn policies_see_the_second_factor(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, VAULT_SCHEMA, SETTINGS).await else { return };
    let (aal1, _, _) = app.signup("vault@example.com", json!({})).await;
    let (s, e) = send(app.as_user(Method::POST, "/rest/v1/secrets", Some(&aal1)).json(&json!({"body": "x"}))).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("42501")), "aal1 cannot write: {e}");
    let (_, f) = call(&app, Method::POST, "/auth/v1/factors", &aal1, json!({"factor_type": "totp"})).await;
    let factor = f["id"].as_str().expect("id");
    let (_, c) = call(&app, Method::POST, &format!("/auth/v1/factors/{factor}/challenge"), &aal1, json!({})).await;
    let body = json!({"challenge_id": c["id"], "code": code(f["totp"]["secret"].as_str().expect("secret"))});
    let (s, session) = call(&app, Method::POST, &format!("/auth/v1/factors/{factor}/verify"), &aal1, body).await;
    assert_eq!(s, 200, "{session}");
    let aal2 = session["access_token"].as_str().expect("token");
    let (s, rows) = send(
        app.as_user(Method::POST, "/rest/v1/secrets?select=body", Some(aal2))
            .header("prefer", "return=representation")
            .json(&json!({"body": "x"})),
    )
    .await;
    assert_eq!((s, rows), (201, json!([{"body": "x"}])));
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/secrets?select=body", Some(&aal1))).await;
    assert_eq!((s, rows), (200, json!([])), "the aal1 token still sees nothing");
    let (s, rows) = send(app.as_user(Method::GET, "/rest/v1/secrets?select=body", Some(aal2))).await;
    assert_eq!((s, rows), (200, json!([{"body": "x"}])));
}

crate::both_backends!(policies_see_the_second_factor);

/// Five wrong codes lock the factor for a while, even against the right one.
async fn wrong_codes_lock_the_factor(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, SETTINGS).await else { return };
    let (token, _, _) = app.signup("guess@example.com", json!({})).await;
    let (_, f) = call(&app, Method::POST, "/auth/v1/factors", &token, json!({"factor_type": "totp"})).await;
    let (factor, secret) = (f["id"].as_str().expect("id"), f["totp"]["secret"].as_str().expect("secret"));
    let (_, c) = call(&app, Method::POST, &format!("/auth/v1/factors/{factor}/challenge"), &token, json!({})).await;
    let right = code(secret);
    let wrong = format!("{:06}", (right.parse::<u32>().expect("digits") + 500_000) % 1_000_000);
    let path = format!("/auth/v1/factors/{factor}/verify");
    for i in 0..5 {
        let (s, e) = call(&app, Method::POST, &path, &token, json!({"challenge_id": c["id"], "code": wrong})).await;
        assert_eq!((s, e["code"].as_str()), (422, Some("mfa_verification_failed")), "attempt {i}: {e}");
    }
    let (s, e) = call(&app, Method::POST, &path, &token, json!({"challenge_id": c["id"], "code": right})).await;
    assert_eq!((s, e["code"].as_str()), (429, Some("over_request_rate_limit")), "{e}");
}

crate::both_backends!(wrong_codes_lock_the_factor);
