//! Sign-in with GitHub through `/authorize` and `/callback`, against a local stand-in for GitHub
//! (its authorize, token, user and e-mails endpoints): new users, returning users, linking by
//! verified e-mail, the PKCE flow, and the errors that land back at the app.

use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{send, Backend, TestApp};

/// The account the stand-in signs in next: (profile, e-mails).
type Account = Arc<Mutex<(Value, Value)>>;

async fn fake_authorize(Query(q): Query<std::collections::HashMap<String, String>>) -> impl IntoResponse {
    assert!(matches!(q.get("client_id").map(String::as_str), Some("gh-client" | "g-client")), "{q:?}");
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    let to = format!("{}?code=good-code&state={}", q["redirect_uri"], urlencode(&q["state"]));
    Redirect::to(&to)
}

async fn fake_token(Form(f): Form<std::collections::HashMap<String, String>>) -> Json<Value> {
    let ok = matches!(f.get("client_secret").map(String::as_str), Some("gh-secret" | "g-secret"))
        && f.get("code").map(String::as_str) == Some("good-code")
        && f.get("grant_type").map(String::as_str) == Some("authorization_code");
    Json(if ok {
        json!({"access_token": "gh-token", "refresh_token": "gh-refresh", "token_type": "bearer"})
    } else {
        json!({"error": "bad_verification_code"})
    })
}

async fn fake_user(State(a): State<Account>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer gh-token") => Json(a.lock().expect("lock").0.clone()).into_response(),
        _ => axum::http::StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn fake_emails(State(a): State<Account>) -> Json<Value> {
    Json(a.lock().expect("lock").1.clone())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The stand-in, on a free port; returns its base URL.
async fn fake_github(account: Account) -> String {
    let app = Router::new()
        .route("/login/oauth/authorize", get(fake_authorize))
        .route("/login/oauth/access_token", post(fake_token))
        .route("/user", get(fake_user))
        .route("/user/emails", get(fake_emails))
        .route("/google/userinfo", get(|| async { Json(json!({"sub": "g-1", "email": "gina@example.com", "email_verified": true, "name": "Gina", "picture": "http://img/g.png"})) }))
        .with_state(account);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once(['?', '#']).map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Follows the browser's hops: Basalt's /authorize, the provider, Basalt's /callback; returns
/// where the app is sent.
async fn sign_in(app: &TestApp, authorize: &str) -> String {
    follow(format!("{}{authorize}", app.url)).await
}

async fn follow(start: String) -> String {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut url = start;
    for _ in 0..3 {
        let res = browser.get(&url).send().await.expect("hop");
        assert!(res.status().is_redirection(), "{url}: {}", res.status());
        url = res.headers()["location"].to_str().expect("location").to_string();
        if url.starts_with("http://app.example.com") {
            return url;
        }
    }
    panic!("never came back to the app: {url}")
}

async fn github_sign_in(b: Backend) {
    let account: Account = Arc::new(Mutex::new((json!({}), json!([]))));
    let gh = fake_github(account.clone()).await;
    let env = [
        ("BASALT_AUTH_AUTOCONFIRM", "true"),
        ("BASALT_AUTH_ANONYMOUS_ENABLED", "true"),
        ("BASALT_AUTH_MANUAL_LINKING_ENABLED", "true"),
        ("BASALT_AUTH_SITE_URL", "http://app.example.com"),
        ("BASALT_AUTH_EXTERNAL_GITHUB_CLIENT_ID", "gh-client"),
        ("BASALT_AUTH_EXTERNAL_GITHUB_SECRET", "gh-secret"),
        ("BASALT_AUTH_EXTERNAL_GITHUB_AUTHORIZE_URL", &format!("{gh}/login/oauth/authorize")),
        ("BASALT_AUTH_EXTERNAL_GITHUB_TOKEN_URL", &format!("{gh}/login/oauth/access_token")),
        ("BASALT_AUTH_EXTERNAL_GITHUB_USERINFO_URL", &format!("{gh}/user")),
        ("BASALT_AUTH_EXTERNAL_GOOGLE_CLIENT_ID", "g-client"),
        ("BASALT_AUTH_EXTERNAL_GOOGLE_SECRET", "g-secret"),
        ("BASALT_AUTH_EXTERNAL_GOOGLE_AUTHORIZE_URL", &format!("{gh}/login/oauth/authorize")),
        ("BASALT_AUTH_EXTERNAL_GOOGLE_TOKEN_URL", &format!("{gh}/login/oauth/access_token")),
        ("BASALT_AUTH_EXTERNAL_GOOGLE_USERINFO_URL", &format!("{gh}/google/userinfo")),
    ];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    let (_, settings) = send(app.as_user(Method::GET, "/auth/v1/settings", None)).await;
    assert_eq!((settings["external"]["github"].as_bool(), settings["external"]["apple"].as_bool()), (Some(true), Some(false)));
    let (s, e) = send(app.as_user(Method::GET, "/auth/v1/authorize?provider=gitlab", None)).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("validation_failed")), "a provider not configured");

    // Google: the OpenID Connect profile.
    let landed = sign_in(&app, "/auth/v1/authorize?provider=google").await;
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&query_of(&landed)["access_token"]))).await;
    assert_eq!((user["email"].as_str(), user["identities"][0]["id"].as_str()), (Some("gina@example.com"), Some("g-1")), "{user}");
    assert_eq!((user["user_metadata"]["full_name"].as_str(), user["app_metadata"]["provider"].as_str()), (Some("Gina"), Some("google")));

    // A new user: created with the GitHub identity, the verified primary address, the profile.
    *account.lock().expect("lock") = (
        json!({"id": 4242, "login": "octo", "name": "Octo Cat", "avatar_url": "http://img/o.png", "email": null}),
        json!([{"email": "other@example.com", "primary": false, "verified": true}, {"email": "octo@example.com", "primary": true, "verified": true}]),
    );
    let landed = sign_in(&app, "/auth/v1/authorize?provider=github&redirect_to=http://app.example.com/welcome").await;
    assert!(landed.starts_with("http://app.example.com/welcome#access_token="), "{landed}");
    let params = query_of(&landed);
    assert_eq!((params["token_type"].as_str(), params["provider_token"].as_str()), ("bearer", "gh-token"));
    assert_eq!(params["provider_refresh_token"], "gh-refresh");
    let token = params["access_token"].clone();
    let (s, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&token))).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!((user["email"].as_str(), user["app_metadata"]["provider"].as_str()), (Some("octo@example.com"), Some("github")));
    assert_eq!((user["identities"][0]["provider"].as_str(), user["identities"][0]["id"].as_str()), (Some("github"), Some("4242")));
    assert_eq!(user["user_metadata"]["user_name"], "octo");
    assert!(user["email_confirmed_at"].is_string(), "GitHub verified the address");
    let first_id = user["id"].as_str().expect("id").to_string();
    // The same account again: the same user.
    let again = sign_in(&app, "/auth/v1/authorize?provider=github").await;
    assert!(again.starts_with("http://app.example.com#access_token="), "site_url when no redirect_to: {again}");
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&query_of(&again)["access_token"]))).await;
    assert_eq!(user["id"].as_str(), Some(first_id.as_str()));

    // An existing e-mail account: linked when GitHub vouches for the address.
    let (_, _, ann) = app.signup("ann@example.com", json!({})).await;
    *account.lock().expect("lock") =
        (json!({"id": 7, "login": "ann"}), json!([{"email": "ann@example.com", "primary": true, "verified": true}]));
    let landed = sign_in(&app, "/auth/v1/authorize?provider=github").await;
    let ann_token = query_of(&landed)["access_token"].clone();
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&ann_token))).await;
    assert_eq!(user["id"].as_str(), Some(ann.as_str()), "linked: {user}");
    let providers: Vec<&str> = user["identities"].as_array().expect("identities").iter().filter_map(|i| i["provider"].as_str()).collect();
    assert_eq!(providers, ["email", "github"]);
    assert_eq!(user["app_metadata"]["providers"], json!(["email", "github"]));

    // PKCE: the app gets a code in the query and exchanges it with its verifier.
    use base64::Engine;
    use sha2::Digest;
    let verifier = "a-code-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let landed = sign_in(
        &app,
        &format!("/auth/v1/authorize?provider=github&redirect_to=http://app.example.com/cb&code_challenge={challenge}&code_challenge_method=s256"),
    )
    .await;
    assert!(landed.starts_with("http://app.example.com/cb?code="), "{landed}");
    let code = query_of(&landed)["code"].clone();
    let exchange = json!({"auth_code": code, "code_verifier": verifier});
    let (s, session) = send(app.as_user(Method::POST, "/auth/v1/token?grant_type=pkce", None).json(&exchange)).await;
    assert_eq!((s, session["user"]["id"].as_str()), (200, Some(ann.as_str())), "{session}");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(session["access_token"].as_str().expect("t").split('.').nth(1).expect("p"))
            .expect("b64"),
    )
    .expect("claims");
    assert_eq!(claims["amr"][0]["method"], "oauth");
    let (s, _) = send(app.as_user(Method::POST, "/auth/v1/token?grant_type=pkce", None).json(&exchange)).await;
    assert_eq!(s, 404, "a code serves once");

    // Errors land back at the app: the provider's refusal, a forged state.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let start = browser
        .get(format!("{}/auth/v1/authorize?provider=github&redirect_to=http://app.example.com/x", app.url))
        .send()
        .await
        .expect("authorize");
    let state = query_of(start.headers()["location"].to_str().expect("location"))["state"].clone();
    // supabase-js' `queryParams` go on to the provider; Basalt's own parameters are not replaced.
    let start = browser
        .get(format!("{}/auth/v1/authorize?provider=github&prompt=consent&client_id=evil&scopes=repo", app.url))
        .send()
        .await
        .expect("authorize");
    let to = query_of(start.headers()["location"].to_str().expect("location"));
    assert_eq!((to["prompt"].as_str(), to["client_id"].as_str(), to["scope"].as_str()), ("consent", "gh-client", "user:email repo"));
    let refused = browser
        .get(format!("{}/auth/v1/callback?error=access_denied&error_description=The+user+said+no&state={}", app.url, urlencode(&state)))
        .send()
        .await
        .expect("callback");
    let to = refused.headers()["location"].to_str().expect("location").to_string();
    assert!(to.starts_with("http://app.example.com/x#error=access_denied&error_code=bad_oauth_callback"), "{to}");
    let forged = browser.get(format!("{}/auth/v1/callback?code=good-code&state=forged.state", app.url)).send().await.expect("callback");
    let to = forged.headers()["location"].to_str().expect("location").to_string();
    assert!(to.starts_with("http://app.example.com#error=access_denied&error_code=bad_oauth_state"), "{to}");
    let tampered = format!("{}x", &state[..state.len() - 1]);
    let res = browser.get(format!("{}/auth/v1/callback?code=good-code&state={}", app.url, urlencode(&tampered))).send().await.expect("cb");
    assert!(res.headers()["location"].to_str().expect("location").contains("bad_oauth_state"));

    // linkIdentity: an anonymous user takes on a GitHub account and becomes permanent.
    let (s, anon) = send(app.as_user(Method::POST, "/auth/v1/signup", None).json(&json!({}))).await;
    assert_eq!(s, 200, "{anon}");
    let anon_token = anon["access_token"].as_str().expect("token").to_string();
    *account.lock().expect("lock") =
        (json!({"id": 555, "login": "newbie"}), json!([{"email": "newbie@example.com", "primary": true, "verified": true}]));
    let (s, link) =
        send(app.as_user(Method::GET, "/auth/v1/user/identities/authorize?provider=github&skip_http_redirect=true", Some(&anon_token)))
            .await;
    assert_eq!(s, 200, "{link}");
    let landed = follow(link["url"].as_str().expect("url").to_string()).await;
    let linked_token = query_of(&landed)["access_token"].clone();
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&linked_token))).await;
    assert_eq!((user["id"].as_str(), user["is_anonymous"].as_bool()), (anon["user"]["id"].as_str(), Some(false)), "{user}");
    assert_eq!(user["email"], "newbie@example.com");
    // unlinkIdentity: never the last one.
    let github_identity = user["identities"][0]["identity_id"].as_str().expect("identity id").to_string();
    let (s, e) = send(app.as_user(Method::DELETE, &format!("/auth/v1/user/identities/{github_identity}"), Some(&linked_token))).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("single_identity_not_deletable")));
    // An account already linked to someone else (Google's belongs to Gina) stays theirs.
    let (_, link) =
        send(app.as_user(Method::GET, "/auth/v1/user/identities/authorize?provider=google&skip_http_redirect=true", Some(&linked_token)))
            .await;
    let landed = follow(link["url"].as_str().expect("url").to_string()).await;
    assert!(landed.contains("error_code=identity_already_exists"), "{landed}");
    // Ann, with her e-mail and GitHub identities, may let GitHub go.
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&ann_token))).await;
    let ann_github = user["identities"].as_array().expect("identities").iter().find(|i| i["provider"] == "github").expect("github")
        ["identity_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, e) = send(app.as_user(Method::DELETE, &format!("/auth/v1/user/identities/{ann_github}"), Some(&ann_token))).await;
    assert_eq!(s, 200, "{e}");
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&ann_token))).await;
    assert_eq!(
        (user["app_metadata"]["providers"].clone(), user["identities"].as_array().map(Vec::len)),
        (json!(["email"]), Some(1)),
        "{user}"
    );
    let (s, e) = send(app.as_user(Method::DELETE, &format!("/auth/v1/user/identities/{ann_github}"), Some(&ann_token))).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("identity_not_found")));
}

/// Without autoconfirm: an address GitHub does not vouch for is confirmed by mail before any
/// session, and an unconfirmed account that GitHub's verified address links into loses what its
/// registrant left on it.
async fn unverified_addresses(b: Backend) {
    let account: Account = Arc::new(Mutex::new((json!({}), json!([]))));
    let gh = fake_github(account.clone()).await;
    let env = [
        ("BASALT_AUTH_SITE_URL", "http://app.example.com"),
        ("BASALT_AUTH_EXTERNAL_GITHUB_CLIENT_ID", "gh-client"),
        ("BASALT_AUTH_EXTERNAL_GITHUB_SECRET", "gh-secret"),
        ("BASALT_AUTH_EXTERNAL_GITHUB_AUTHORIZE_URL", &format!("{gh}/login/oauth/authorize")),
        ("BASALT_AUTH_EXTERNAL_GITHUB_TOKEN_URL", &format!("{gh}/login/oauth/access_token")),
        ("BASALT_AUTH_EXTERNAL_GITHUB_USERINFO_URL", &format!("{gh}/user")),
    ];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    *account.lock().expect("lock") = (
        json!({"id": 1, "login": "unsure", "email": "unsure@example.com"}),
        json!([{"email": "unsure@example.com", "primary": true, "verified": false}]),
    );
    let landed = sign_in(&app, "/auth/v1/authorize?provider=github").await;
    assert!(landed.contains("error_code=provider_email_needs_verification") && !landed.contains("access_token"), "{landed}");
    assert!(app.last_mail("unsure@example.com")["subject"].is_string(), "a confirmation mail went out");

    // Someone registers victim@ with a password and never confirms; the owner signs in with GitHub.
    let (s, _) =
        send(app.as_user(Method::POST, "/auth/v1/signup", None).json(&json!({"email": "victim@example.com", "password": "squatter-pass"})))
            .await;
    assert_eq!(s, 200);
    *account.lock().expect("lock") =
        (json!({"id": 2, "login": "victim"}), json!([{"email": "victim@example.com", "primary": true, "verified": true}]));
    let landed = sign_in(&app, "/auth/v1/authorize?provider=github").await;
    let (_, user) = send(app.as_user(Method::GET, "/auth/v1/user", Some(&query_of(&landed)["access_token"]))).await;
    let providers: Vec<&str> = user["identities"].as_array().expect("identities").iter().filter_map(|i| i["provider"].as_str()).collect();
    assert_eq!((providers, user["email_confirmed_at"].is_string()), (vec!["github"], true), "{user}");
    let (s, _) = send(
        app.as_user(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "victim@example.com", "password": "squatter-pass"})),
    )
    .await;
    assert_eq!(s, 400, "the registrant's password is gone");
    // linkIdentity is off unless switched on.
    let (s, e) = send(app.as_user(
        Method::GET,
        "/auth/v1/user/identities/authorize?provider=github&skip_http_redirect=true",
        Some(&query_of(&landed)["access_token"]),
    ))
    .await;
    assert_eq!((s, e["code"].as_str()), (404, Some("manual_linking_disabled")));
}

crate::both_backends!(github_sign_in, unverified_addresses);
