//! The GoTrue-compatible API: sessions, refresh rotation, e-mail flows through the outbox,
//! the admin API, account states, rate limits and token refusals.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, Backend, TestApp, SECRET};

const AUTO: &[(&str, &str)] = &[("BASALT_AUTH_AUTOCONFIRM", "true")];

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    send(app.as_user(Method::POST, path, token).json(&body)).await
}

async fn sessions(b: Backend) {
    let Some(app) =
        TestApp::spawn_with(b, crate::SCHEMA, &[("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_AUTH_REFRESH_REUSE_INTERVAL", "0")]).await
    else {
        return;
    };
    let (access, refresh, id) = app.signup("ann@example.com", json!({"name": "Ann"})).await;
    let (s, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&access))).await;
    assert_eq!((s, user["id"].as_str(), user["user_metadata"]["name"].as_str()), (200, Some(id.as_str()), Some("Ann")));
    assert_eq!(user["app_metadata"], json!({"provider": "email", "providers": ["email"]}));
    assert_eq!(user["identities"][0]["provider"], "email");
    // Claims as Supabase issues them.
    let payload = access.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(&base64_url(payload)).expect("claims");
    for k in [
        "sub",
        "aud",
        "exp",
        "iat",
        "iss",
        "role",
        "email",
        "phone",
        "app_metadata",
        "user_metadata",
        "session_id",
        "aal",
        "amr",
        "is_anonymous",
    ] {
        assert!(claims.get(k).is_some(), "claim {k} in {claims}");
    }
    assert_eq!((claims["role"].as_str(), claims["aud"].as_str()), (Some("authenticated"), Some("authenticated")));
    // Wrong password: GoTrue's error shape and version header.
    let res = app
        .as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
        .json(&json!({"email": "ann@example.com", "password": "nope"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.headers()["x-supabase-api-version"], "2024-01-01");
    let e: Value = res.json().await.expect("json");
    assert_eq!(
        (e["code"].as_str(), e["error_code"].as_str(), e["msg"].as_str()),
        (Some("invalid_credentials"), Some("invalid_credentials"), Some("Invalid login credentials"))
    );
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "nobody@example.com", "password": "password-123"})).await;
    assert_eq!(s, 400);
    // Rotation: A -> B -> C; the parent of the active token still works; an older one revokes the session.
    let (s, b1) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({"refresh_token": refresh})).await;
    assert_eq!(s, 200, "{b1}");
    let rb = b1["refresh_token"].as_str().expect("token").to_string();
    assert_ne!(rb, refresh);
    let (s, again) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({"refresh_token": refresh})).await;
    assert_eq!(s, 200, "the parent of the active token is accepted: {again}");
    let rc = again["refresh_token"].as_str().expect("token").to_string();
    let (s, _) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({"refresh_token": rc})).await;
    assert_eq!(s, 200);
    let (s, e) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({"refresh_token": refresh})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("refresh_token_already_used")));
    let (s, e) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&access))).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("session_not_found")), "reuse revoked the session");
    let (s, e) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({"refresh_token": "unknown"})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("refresh_token_not_found")));
    let (s, e) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({})).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_request")));
}

async fn user_updates_and_logout(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, AUTO).await else { return };
    let (access, refresh, _) = app.signup("bob@example.com", json!({"a": 1})).await;
    let (s, u) =
        send(app.as_user(Method::PUT, "/auth/v1/user", Some(&access)).json(&json!({"data": {"b": 2}, "password": "new-password-1"}))).await;
    assert_eq!((s, u["user_metadata"].clone()), (200, json!({"a": 1, "b": 2})));
    let (s, e) = send(app.as_user(Method::PUT, "/auth/v1/user", Some(&access)).json(&json!({"password": "123"}))).await;
    assert_eq!((s, e["code"].as_str(), e["weak_password"]["reasons"].clone()), (422, Some("weak_password"), json!(["length"])));
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "bob@example.com", "password": "new-password-1"})).await;
    assert_eq!(s, 200);
    let (s, e) = post(&app, "/auth/v1/signup", None, json!({"email": "bob@example.com", "password": "password-123"})).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("user_already_exists")));
    let (s, e) = post(&app, "/auth/v1/signup", None, json!({"email": "carl@example.com", "password": "12"})).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("weak_password")));
    let (s, e) = post(&app, "/auth/v1/signup", None, json!({"email": "not-an-email", "password": "password-123"})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("email_address_invalid")));
    let res = app.as_user(Method::POST, "/auth/v1/logout?scope=global", Some(&access)).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 204);
    let (s, _) = post(&app, "/auth/v1/token?grant_type=refresh_token", None, json!({"refresh_token": refresh})).await;
    assert_eq!(s, 400, "sign-out ends the session");
    let (s, settings) = send(app.as_user(Method::GET, "/auth/v1/settings", None)).await;
    assert_eq!((s, settings["mailer_autoconfirm"].clone()), (200, json!(true)));
    let (s, _) = send(app.client.get(format!("{}/auth/v1/settings", app.url))).await;
    assert_eq!(s, 401, "the apikey is required");
}

async fn email_flows(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    // Sign-up without autoconfirm: a user, no session, a confirmation mail.
    let (s, u) = post(
        &app,
        "/auth/v1/signup?redirect_to=http://localhost:3000/welcome",
        None,
        json!({"email": "dee@example.com", "password": "password-123"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(u.get("access_token").is_none() && u["confirmation_sent_at"].is_string(), "{u}");
    let (s, e) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "dee@example.com", "password": "password-123"})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("email_not_confirmed")));
    let mail = app.last_mail("dee@example.com");
    assert_eq!(mail["type"], "signup");
    let link = mail["link"].as_str().expect("link");
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(link)
        .send()
        .await
        .expect("follow");
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers()["location"].to_str().expect("location").to_string();
    assert!(location.starts_with("http://localhost:3000/welcome#access_token=") && location.contains("type=signup"), "{location}");
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "dee@example.com", "password": "password-123"})).await;
    assert_eq!(s, 200);
    // The same link twice fails.
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(link)
        .send()
        .await
        .expect("follow");
    assert!(res.headers()["location"].to_str().expect("l").contains("error_code=otp_expired"));
    // E-mail OTP: creates the user, then the six-digit code signs in.
    let (s, _) = post(&app, "/auth/v1/otp", None, json!({"email": "eve@example.com", "create_user": true})).await;
    assert_eq!(s, 200);
    let code = app.last_mail("eve@example.com")["otp"].as_str().expect("otp").to_string();
    let (s, e) = post(&app, "/auth/v1/verify", None, json!({"type": "email", "email": "eve@example.com", "token": "000000x"})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("otp_expired")));
    let (s, session) = post(&app, "/auth/v1/verify", None, json!({"type": "email", "email": "eve@example.com", "token": code})).await;
    assert_eq!((s, session["user"]["email"].as_str()), (200, Some("eve@example.com")));
    assert!(session["user"]["email_confirmed_at"].is_string());
    // Recovery: always {} (no enumeration); the link's token signs in, then the password changes.
    let (s, body) = post(&app, "/auth/v1/recover", None, json!({"email": "ghost@example.com"})).await;
    assert_eq!((s, body), (200, json!({})));
    post(&app, "/auth/v1/recover", None, json!({"email": "dee@example.com"})).await;
    let link = app.last_mail("dee@example.com")["link"].as_str().expect("link").to_string();
    let token = link.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token");
    let (s, session) = post(&app, "/auth/v1/verify", None, json!({"type": "recovery", "token_hash": token})).await;
    assert_eq!(s, 200, "{session}");
    let access = session["access_token"].as_str().expect("access");
    let (s, _) = send(app.as_user(Method::PUT, "/auth/v1/user", Some(access)).json(&json!({"password": "brand-new-pass"}))).await;
    assert_eq!(s, 200);
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "dee@example.com", "password": "brand-new-pass"})).await;
    assert_eq!(s, 200);
}

async fn admin_api(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, AUTO).await else { return };
    let admin = |m: Method, p: &str| app.req(m, p);
    let (s, u) = send(
        admin(Method::POST, "/auth/v1/admin/users")
            .json(&json!({"email": "f@example.com", "password": "password-123", "email_confirm": true, "app_metadata": {"plan": "pro"}})),
    )
    .await;
    assert_eq!((s, u["app_metadata"]["plan"].as_str()), (200, Some("pro")));
    let id = u["id"].as_str().expect("id").to_string();
    let (s, e) =
        send(admin(Method::POST, "/auth/v1/admin/users").json(&json!({"email": "f@example.com", "password": "password-123"}))).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("email_exists")));
    for i in 0..4 {
        send(admin(Method::POST, "/auth/v1/admin/users").json(&json!({"email": format!("p{i}@example.com"), "password": "password-123"})))
            .await;
    }
    let res = admin(Method::GET, "/auth/v1/admin/users?page=2&per_page=2").send().await.expect("send");
    assert_eq!(res.headers()["x-total-count"], "5");
    let link = res.headers()["link"].to_str().expect("link").to_string();
    assert!(link.contains("page=3&per_page=2>; rel=\"next\"") && link.contains("rel=\"last\""), "{link}");
    let list: Value = res.json().await.expect("json");
    assert_eq!(list["users"].as_array().map(Vec::len), Some(2));
    // Ban, refuse, unban.
    let (s, u) =
        send(admin(Method::PUT, &format!("/auth/v1/admin/users/{id}")).json(&json!({"ban_duration": "24h", "user_metadata": {"x": 1}})))
            .await;
    assert_eq!(s, 200);
    assert!(u["banned_until"].is_string());
    let (s, e) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "f@example.com", "password": "password-123"})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("user_banned")));
    send(admin(Method::PUT, &format!("/auth/v1/admin/users/{id}")).json(&json!({"ban_duration": "none"}))).await;
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "f@example.com", "password": "password-123"})).await;
    assert_eq!(s, 200);
    let (s, g) =
        send(admin(Method::POST, "/auth/v1/admin/generate_link").json(&json!({"type": "magiclink", "email": "f@example.com"}))).await;
    assert_eq!((s, g["verification_type"].as_str()), (200, Some("magiclink")));
    assert!(g["action_link"].as_str().expect("link").contains("/auth/v1/verify?token="));
    let (s, _) = post(&app, "/auth/v1/verify", None, json!({"type": "magiclink", "token_hash": g["hashed_token"]})).await;
    assert_eq!(s, 200);
    // Non-admins are refused; deleting a user works and is final.
    let (user_token, _, _) = app.signup("g@example.com", json!({})).await;
    let (s, e) = send(app.as_user(Method::GET, "/auth/v1/admin/users", Some(&user_token))).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("not_admin")));
    let (s, body) = send(admin(Method::DELETE, &format!("/auth/v1/admin/users/{id}"))).await;
    assert_eq!((s, body), (200, json!({})));
    let (s, e) = send(admin(Method::GET, &format!("/auth/v1/admin/users/{id}"))).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("user_not_found")));
}

async fn bcrypt_users_sign_in(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, AUTO).await else { return };
    let hash = bcrypt_of("legacy-password");
    let (s, u) = send(
        app.req(Method::POST, "/auth/v1/admin/users")
            .json(&json!({"email": "old@example.com", "password_hash": hash, "email_confirm": true})),
    )
    .await;
    assert_eq!(s, 200, "{u}");
    for _ in 0..2 {
        let (s, _) =
            post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "old@example.com", "password": "legacy-password"}))
                .await;
        assert_eq!(s, 200, "bcrypt first, argon2id after the upgrade");
    }
    // Argon2 hashes with other settings (an earlier Basalt's, or version 16) sign in, and again
    // after their upgrade to the current settings.
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    let older = argon2::Argon2::default().hash_password(b"older-password", &salt).expect("argon2").to_string();
    let v16 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x10, argon2::Params::default())
        .hash_password(b"older-password", &salt)
        .expect("argon2")
        .to_string();
    for (email, hash) in [("older@example.com", older), ("v16@example.com", v16)] {
        let (s, u) = send(
            app.req(Method::POST, "/auth/v1/admin/users").json(&json!({"email": email, "password_hash": hash, "email_confirm": true})),
        )
        .await;
        assert_eq!(s, 200, "{u}");
        for _ in 0..2 {
            let (s, body) =
                post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": email, "password": "older-password"})).await;
            assert_eq!(s, 200, "{email}: {body}");
        }
        let (s, _) = post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": email, "password": "wrong-password"})).await;
        assert_eq!(s, 400);
    }
}

/// A `$2b$` hash as Supabase's auth.users export holds.
fn bcrypt_of(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

async fn account_states(b: Backend) {
    let env = [
        ("BASALT_AUTH_AUTOCONFIRM", "true"),
        ("BASALT_AUTH_REQUIRE_APPROVAL", "true"),
        ("BASALT_AUTH_ANONYMOUS_ENABLED", "true"),
        ("BASALT_AUTH_RATE_LIMIT_EMAIL_PER_MINUTE", "4"),
    ];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    let (s, u) = post(&app, "/auth/v1/signup", None, json!({"email": "h@example.com", "password": "password-123"})).await;
    assert_eq!(s, 200);
    assert!(u.get("access_token").is_none(), "awaiting approval: no session");
    let id = u["id"].as_str().expect("id");
    let (s, e) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "h@example.com", "password": "password-123"})).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("user_not_approved")));
    send(app.req(Method::PUT, &format!("/auth/v1/admin/users/{id}")).json(&json!({"app_metadata": {"approved": true}}))).await;
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "h@example.com", "password": "password-123"})).await;
    assert_eq!(s, 200);
    // Anonymous sign-in.
    let (s, anon) = post(&app, "/auth/v1/signup", None, json!({"data": {}})).await;
    assert_eq!((s, anon["user"]["is_anonymous"].clone()), (200, json!(true)));
    // Rate limit per e-mail: the fifth attempt in a minute is refused.
    let mut last = 0;
    for _ in 0..5 {
        last = post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "h@example.com", "password": "wrong"})).await.0;
    }
    assert_eq!(last, 429);
    let (_, e) = post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "h@example.com", "password": "wrong"})).await;
    assert_eq!(e["code"], "over_request_rate_limit");
}

async fn token_refusals(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, AUTO).await else { return };
    let (access, _, _) = app.signup("i@example.com", json!({})).await;
    let (s, _) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&access))).await;
    assert_eq!(s, 200);
    let expired = sign(&json!({"role": "authenticated", "sub": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "exp": 1000}), SECRET);
    let (s, e) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&expired))).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("PGRST303")));
    let forged = sign(&json!({"role": "service_role", "exp": 4_000_000_000u64}), "some-other-secret-of-enough-length-000");
    let (s, e) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&forged))).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("PGRST301")));
    let bad_role = sign(&json!({"role": "postgres", "exp": 4_000_000_000u64}), SECRET);
    let (s, _) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&bad_role))).await;
    assert_eq!(s, 401);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"role":"service_role","exp":4000000000}"#));
    let (s, _) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&none))).await;
    assert_eq!(s, 401);
    let (s, e) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&forged))).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("bad_jwt")));
    // Found by probing: each of these panicked (overflow) or gave 500 on one backend.
    let forever = sign(&json!({"role": "service_role", "exp": i64::MAX}), SECRET);
    let (s, _) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&forever))).await;
    assert_eq!(s, 200, "an exp at the end of time is not an overflow");
    let not_yet = sign(&json!({"role": "service_role", "nbf": 4_000_000_000u64, "exp": 4_000_000_001u64}), SECRET);
    let (s, e) = send(app.as_user(Method::GET, "/rest/v1/todos", Some(&not_yet))).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("PGRST301")), "{e}");
    for sub in ["not-a-uuid", "\u{0}"] {
        let odd = sign(&json!({"role": "authenticated", "sub": sub, "exp": 4_000_000_000u64}), SECRET);
        let (s, e) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&odd))).await;
        assert_eq!((s, e["error_code"].as_str()), (403, Some("bad_jwt")), "{e}");
    }
    let res = app.client.get(format!("{}/rest/v1/todos", app.url)).header("apikey", &app.anon);
    let res = res.header("authorization", reqwest::header::HeaderValue::from_bytes(b"Bearer \xc3\xa9.x.y").expect("header"));
    let (s, e) = send(res).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("PGRST301")), "a token that is not ASCII is refused, not ignored: {e}");
    let long_role = sign(&json!({"role": "r".repeat(10_000), "exp": 4_000_000_000u64}), SECRET);
    let res = app.as_user(Method::GET, "/rest/v1/todos", Some(&long_role)).send().await.expect("send");
    assert_eq!(res.status(), 401);
    let echoed = res.headers().get("www-authenticate").map(|h| h.len()).unwrap_or(0);
    assert!(echoed < 400, "the role is not echoed at length: {echoed} bytes");
    let (s, _) = send(app.req(Method::GET, "/auth/v1/admin/users?page=9223372036854775807&per_page=2")).await;
    assert_eq!(s, 200);
    let (s, e) =
        post(&app, "/auth/v1/signup", None, json!({"email": format!("{}@example.com", "a".repeat(250)), "password": "password-123"})).await;
    assert_eq!((s, e["error_code"].as_str()), (400, Some("email_address_invalid")), "{e}");
    let (s, e) =
        post(&app, "/auth/v1/signup", None, json!({"email": "nul@example.com", "password": "password-123", "data": {"a": "x\u{0}y"}}))
            .await;
    assert_eq!((s, e["error_code"].as_str()), (400, Some("validation_failed")), "{e}");
    for duration in ["99999999999h", "9223372036854775807s", "87600000h"] {
        let body = json!({"email": "banned@example.com", "password": "password-123", "ban_duration": duration});
        let (s, e) = send(app.req(Method::POST, "/auth/v1/admin/users").json(&body)).await;
        assert_eq!((s, e["error_code"].as_str()), (400, Some("validation_failed")), "{duration}: {e}");
    }
    let body = json!({"email": "banned@example.com", "password": "password-123", "ban_duration": "1h"});
    let (s, e) = send(app.req(Method::POST, "/auth/v1/admin/users").json(&body)).await;
    assert_eq!(s, 200, "no user was left behind by the refused ban: {e}");
}

/// The mails in the outbox to `to`, oldest first.
fn mails_to(app: &TestApp, to: &str) -> Vec<Value> {
    let dir = app.dir.path().join("data").join("outbox");
    let mut files: Vec<_> = std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(|m| m["to"] == to)
        .collect()
}

/// GoTrue's per-user mail interval: a second mail of the same kind within the interval is 429
/// `over_email_send_rate_limit` with the seconds left, and sends nothing; other kinds and other
/// users are not held back.
async fn mail_frequency(b: Backend) {
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let (s, _) = post(&app, "/auth/v1/signup", None, json!({"email": "freq@example.com", "password": "password-123"})).await;
    assert_eq!(s, 200);
    let too_soon = |(s, e): (u16, Value)| {
        assert_eq!((s, e["error_code"].as_str()), (429, Some("over_email_send_rate_limit")), "{e}");
        let msg = e["msg"].as_str().expect("msg");
        let seconds: i64 = msg
            .strip_prefix("For security purposes, you can only request this after ")
            .and_then(|m| m.strip_suffix(" seconds."))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{msg}"));
        assert!((55..=60).contains(&seconds), "{msg}");
    };
    too_soon(post(&app, "/auth/v1/resend", None, json!({"type": "signup", "email": "freq@example.com"})).await);
    too_soon(post(&app, "/auth/v1/signup", None, json!({"email": "freq@example.com", "password": "password-123"})).await);
    assert_eq!(mails_to(&app, "freq@example.com").len(), 1, "nothing more was sent");
    // A recovery mail is another kind; the next one is held back.
    let (s, _) = post(&app, "/auth/v1/recover", None, json!({"email": "freq@example.com"})).await;
    assert_eq!(s, 200);
    too_soon(post(&app, "/auth/v1/recover", None, json!({"email": "freq@example.com"})).await);
    too_soon(post(&app, "/auth/v1/otp", None, json!({"email": "freq@example.com"})).await);
    assert_eq!(mails_to(&app, "freq@example.com").len(), 2);
    let (s, _) = post(&app, "/auth/v1/recover", None, json!({"email": "other@example.com"})).await;
    assert_eq!(s, 200, "an unknown address is answered as before");
}

/// `POST /resend` (supabase-js `auth.resend`): the signup confirmation and the e-mail change
/// confirmation once more, `{}` for unknown addresses and when nothing waits for confirmation.
async fn resend(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &[("BASALT_AUTH_MAIL_MAX_FREQUENCY", "0")]).await else { return };
    let (s, _) = post(&app, "/auth/v1/signup", None, json!({"email": "res@example.com", "password": "password-123"})).await;
    assert_eq!(s, 200);
    let (s, body) =
        post(&app, "/auth/v1/resend?redirect_to=http://localhost:3000/again", None, json!({"type": "signup", "email": "res@example.com"}))
            .await;
    assert_eq!((s, body), (200, json!({})));
    let mails = mails_to(&app, "res@example.com");
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1]["type"], "signup");
    let link = mails[1]["link"].as_str().expect("link").to_string();
    assert!(link.contains("redirect_to=http"), "{link}");
    let token = link.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token");
    let (s, session) = post(&app, "/auth/v1/verify", None, json!({"type": "signup", "token_hash": token})).await;
    assert_eq!(s, 200, "the resent link confirms: {session}");
    let access = session["access_token"].as_str().expect("access").to_string();
    // Confirmed now: nothing more to send, and an unknown address looks the same.
    for email in ["res@example.com", "nobody@example.com"] {
        let (s, body) = post(&app, "/auth/v1/resend", None, json!({"type": "signup", "email": email})).await;
        assert_eq!((s, body), (200, json!({})));
    }
    assert_eq!(mails_to(&app, "res@example.com").len(), 2);
    assert!(mails_to(&app, "nobody@example.com").is_empty());
    // An e-mail change waiting for confirmation: its mail again, to the new address.
    let (s, body) = post(&app, "/auth/v1/resend", None, json!({"type": "email_change", "email": "res@example.com"})).await;
    assert_eq!((s, body), (200, json!({})), "no change pending");
    let (s, _) = send(app.as_user(Method::PUT, "/auth/v1/user", Some(&access)).json(&json!({"email": "res-new@example.com"}))).await;
    assert_eq!(s, 200);
    let (s, _) = post(&app, "/auth/v1/resend", None, json!({"type": "email_change", "email": "res@example.com"})).await;
    assert_eq!(s, 200);
    let changes = mails_to(&app, "res-new@example.com");
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[1]["type"], "email_change");
    // Bad requests, as GoTrue words them.
    for (body, code) in [
        (json!({"email": "res@example.com"}), "validation_failed"),
        (json!({"type": "recovery", "email": "res@example.com"}), "validation_failed"),
        (json!({"type": "signup"}), "validation_failed"),
        (json!({"type": "signup", "email": "not-an-email"}), "email_address_invalid"),
        (json!({"type": "sms", "phone": "+15550100"}), "phone_provider_disabled"),
        (json!({"type": "signup", "email": "res@example.com", "phone": "+15550100"}), "validation_failed"),
    ] {
        let (s, e) = post(&app, "/auth/v1/resend", None, body.clone()).await;
        assert_eq!((s, e["code"].as_str()), (400, Some(code)), "{body}: {e}");
    }
}

/// `secure_password_change`: a password change needs the code `/reauthenticate` mails (the
/// `nonce`), once, unless the session was opened in the last 24 hours (GoTrue's rule); a token
/// that names no session is not recent.
async fn reauthentication(b: Backend) {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_AUTH_SECURE_PASSWORD_CHANGE", "true")];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    let (fresh, _, id) = app.signup("re@example.com", json!({})).await;
    let change = |token: &str, body: Value| send(app.as_user(Method::PUT, "/auth/v1/user", Some(token)).json(&body));
    let (s, e) = change(&fresh, json!({"password": "changed-once"})).await;
    assert_eq!(s, 200, "a session opened just now may change the password: {e}");
    let sessionless = sign(
        &json!({"sub": id, "role": "authenticated", "aud": "authenticated", "email": "re@example.com", "exp": 4_000_000_000u64}),
        SECRET,
    );
    let (s, e) = change(&sessionless, json!({"password": "changed-twice"})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("reauthentication_needed")), "{e}");
    let (s, body) = send(app.as_user(Method::GET, "/auth/v1/reauthenticate", Some(&sessionless))).await;
    assert_eq!((s, body), (200, json!({})));
    let mail = app.last_mail("re@example.com");
    assert_eq!(mail["type"], "reauthentication");
    let nonce = mail["otp"].as_str().expect("code").to_string();
    let wrong = if nonce == "000000" { "111111" } else { "000000" };
    let (s, e) = change(&sessionless, json!({"password": "changed-twice", "nonce": wrong})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("reauthentication_not_valid")), "{e}");
    let (s, e) = change(&sessionless, json!({"password": "changed-twice", "nonce": nonce})).await;
    assert_eq!(s, 200, "{e}");
    let (s, _) =
        post(&app, "/auth/v1/token?grant_type=password", None, json!({"email": "re@example.com", "password": "changed-twice"})).await;
    assert_eq!(s, 200);
    let (s, e) = change(&sessionless, json!({"password": "changed-thrice", "nonce": nonce})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("reauthentication_not_valid")), "a code serves once: {e}");
    // Other changes need no code; an unconfirmed address gets none.
    let (s, _) = change(&sessionless, json!({"data": {"plan": "pro"}})).await;
    assert_eq!(s, 200);
    let (s, u) =
        send(app.req(Method::POST, "/auth/v1/admin/users").json(&json!({"email": "unconfirmed@example.com", "password": "password-123"})))
            .await;
    assert_eq!(s, 200, "{u}");
    let unconfirmed = sign(&json!({"sub": u["id"], "role": "authenticated", "aud": "authenticated", "exp": 4_000_000_000u64}), SECRET);
    let (s, e) = send(app.as_user(Method::GET, "/auth/v1/reauthenticate", Some(&unconfirmed))).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("email_not_confirmed")), "{e}");
}

/// PKCE (supabase-js `flowType: 'pkce'`, @supabase/ssr's default): a mailed link yields an auth
/// code in the redirect's query, which the verifier exchanges once for a session.
async fn pkce(b: Backend) {
    use base64::Engine;
    use sha2::Digest;
    let Some(app) = TestApp::spawn(b, crate::SCHEMA).await else { return };
    let verifier = "a-code-verifier-of-forty-three-characters-or-more-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let follow = |link: String| {
        let c = no_redirects.clone();
        async move {
            let res = c.get(link).send().await.expect("follow");
            assert_eq!(res.status().as_u16(), 303);
            res.headers()["location"].to_str().expect("location").to_string()
        }
    };
    let exchange = |code: &str, verifier: &str| {
        post(&app, "/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier}))
    };
    let (s, u) = post(
        &app,
        "/auth/v1/signup?redirect_to=http://localhost:3000/auth/callback",
        None,
        json!({"email": "pk@example.com", "password": "password-123", "code_challenge": challenge, "code_challenge_method": "s256"}),
    )
    .await;
    assert_eq!(s, 200, "{u}");
    let link = app.last_mail("pk@example.com")["link"].as_str().expect("link").to_string();
    assert!(link.contains("token=pkce_"), "{link}");
    let location = follow(link.clone()).await;
    let code = location.strip_prefix("http://localhost:3000/auth/callback?code=").unwrap_or_else(|| panic!("{location}")).to_string();
    let (s, e) = exchange(&code, "not-the-verifier-not-the-verifier-not-the-verifier").await;
    assert_eq!((s, e["code"].as_str()), (403, Some("bad_code_verifier")), "{e}");
    let (s, session) = exchange(&code, verifier).await;
    assert_eq!(s, 200, "{session}");
    assert_eq!(session["user"]["email"], "pk@example.com");
    assert!(session["user"]["email_confirmed_at"].is_string() && session["refresh_token"].is_string());
    let (s, e) = exchange(&code, verifier).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("flow_state_not_found")), "a code serves once: {e}");
    // The link itself is used up too.
    assert!(follow(link).await.contains("error_code=otp_expired"));
    // A magic link with the plain method.
    let plain = "plain-verifier-plain-verifier-plain-verifier-0123";
    let (s, _) =
        post(&app, "/auth/v1/otp", None, json!({"email": "pk@example.com", "code_challenge": plain, "code_challenge_method": "plain"}))
            .await;
    assert_eq!(s, 200);
    let location = follow(app.last_mail("pk@example.com")["link"].as_str().expect("link").to_string()).await;
    let code = location.split("code=").nth(1).expect("code").to_string();
    let (s, session) = exchange(&code, plain).await;
    assert_eq!((s, session["user"]["email"].as_str()), (200, Some("pk@example.com")));
    // Bad requests.
    for (body, status, error) in [
        (json!({"email": "pk@example.com", "code_challenge": challenge}), 400, "validation_failed"),
        (json!({"email": "pk@example.com", "code_challenge": challenge, "code_challenge_method": "s512"}), 400, "validation_failed"),
        (json!({"email": "pk@example.com", "code_challenge": "short", "code_challenge_method": "plain"}), 400, "validation_failed"),
    ] {
        let (s, e) = post(&app, "/auth/v1/otp", None, body.clone()).await;
        assert_eq!((s, e["code"].as_str()), (status, Some(error)), "{body}: {e}");
    }
    let (s, e) = exchange("00000000-0000-4000-8000-000000000000", verifier).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("flow_state_not_found")));
    let (s, e) = post(&app, "/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code})).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")));
}

/// Supabase's opaque keys stand for the project keys: `sb_publishable_…` as anon (RLS applies),
/// `sb_secret_…` as service_role (admin API, every row), as supabase-js sends them (both as
/// `apikey` and as the bearer token); a made-up one is refused.
async fn opaque_keys(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, AUTO).await else { return };
    let (public, secret) = app.opaque.clone();
    assert!(public.starts_with("sb_publishable_") && secret.starts_with("sb_secret_"));
    let with = |key: &str, method: Method, path: &str| {
        app.client.request(method, format!("{}{path}", app.url)).header("apikey", key).header("authorization", format!("Bearer {key}"))
    };
    let (s, e) = send(with(&secret, Method::POST, "/rest/v1/lists").json(&json!({"name": "by the secret key"}))).await;
    assert_eq!(s, 201, "{e}");
    let (s, rows) = send(with(&secret, Method::GET, "/rest/v1/lists?select=name")).await;
    assert_eq!((s, rows), (200, json!([{"name": "by the secret key"}])));
    let (s, users) = send(with(&secret, Method::GET, "/auth/v1/admin/users")).await;
    assert_eq!(s, 200, "{users}");
    let (s, e) = send(with(&public, Method::GET, "/auth/v1/admin/users")).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("not_admin")), "{e}");
    let (s, session) = send(
        with(&public, Method::POST, "/auth/v1/token?grant_type=password")
            .json(&json!({"email": "nobody@example.com", "password": "x-x-x-x"})),
    )
    .await;
    assert_eq!(s, 400, "the publishable key reaches auth: {session}");
    let (s, e) = send(with("sb_secret_madeupmadeupmadeupmadeupmadeup12", Method::GET, "/rest/v1/lists")).await;
    assert_eq!(s, 401, "{e}");
}

/// PUT /user is rate-limited per user, as GoTrue's: it also bounds guessing a reauthentication
/// code.
async fn user_updates_are_limited(b: Backend) {
    let env = [("BASALT_AUTH_AUTOCONFIRM", "true"), ("BASALT_AUTH_RATE_LIMIT_EMAIL_PER_MINUTE", "4")];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    let (token, _, _) = app.signup("limited-updates@example.com", json!({})).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(send(app.as_user(Method::PUT, "/auth/v1/user", Some(&token)).json(&json!({"data": {"n": i}}))).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429], "the fifth update in a minute is refused");
}

crate::both_backends!(
    sessions,
    user_updates_and_logout,
    email_flows,
    admin_api,
    bcrypt_users_sign_in,
    account_states,
    token_refusals,
    resend,
    mail_frequency,
    reauthentication,
    pkce,
    opaque_keys,
    user_updates_are_limited
);

// ---- tiny JWT helpers for forging test tokens ----

fn b64(s: &str) -> String {
    b64_bytes(s.as_bytes())
}

fn b64_bytes(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64_url(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let vals: Vec<u32> = s.bytes().filter_map(|c| A.iter().position(|a| *a == c).map(|p| p as u32)).collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

pub(crate) fn sign(claims: &Value, secret: &str) -> String {
    sign_key(claims, secret.as_bytes())
}

/// An HS256 token signed with raw key bytes.
pub(crate) fn sign_key(claims: &Value, key: &[u8]) -> String {
    use hmac_sha256::hmac;
    let head = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64(&claims.to_string());
    let sig = hmac(key, format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", b64_bytes(&sig))
}

mod hmac_sha256 {
    use sha2::{Digest, Sha256};

    pub fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::digest([ipad.as_slice(), msg].concat());
        Sha256::digest([opad.as_slice(), &inner[..]].concat()).to_vec()
    }
}
