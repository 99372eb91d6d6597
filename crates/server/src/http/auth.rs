//! The GoTrue-compatible API at `/auth/v1`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::client_ip::ClientIp;
use crate::app::AppState;
use crate::auth::error::{AuthError, AuthResult};
use crate::auth::oauth::AuthorizeRequest;
use crate::auth::service::{urlencode, Client};
use crate::auth::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/health",
            get(|| async {
                Json(json!({"version": env!("CARGO_PKG_VERSION"), "name": "Basalt Auth", "description": "GoTrue-compatible auth"}))
            }),
        )
        .route("/settings", get(settings))
        .route("/signup", post(signup))
        .route("/token", post(token))
        .route("/user", get(get_user).put(put_user))
        .route("/logout", post(logout))
        .route("/recover", post(recover))
        .route("/otp", post(otp))
        .route("/resend", post(resend))
        .route("/reauthenticate", get(reauthenticate).post(reauthenticate))
        .route("/magiclink", post(otp))
        .route("/verify", get(verify_link).post(verify))
        .route("/invite", post(invite))
        .route("/admin/users", get(admin_list).post(admin_create))
        .route("/admin/users/{id}", get(admin_get).put(admin_update).delete(admin_delete))
        .route("/admin/generate_link", post(generate_link))
        .route("/authorize", get(authorize))
        .route("/callback", get(callback))
        .route("/user/identities/authorize", get(link_identity))
        .route("/user/identities/{id}", axum::routing::delete(unlink_identity))
        .route("/factors", post(enroll))
        .route("/factors/{id}", axum::routing::delete(unenroll))
        .route("/factors/{id}/challenge", post(challenge))
        .route("/factors/{id}/verify", post(verify_factor))
        .route("/admin/users/{id}/factors", get(admin_factors))
        .route("/admin/users/{id}/factors/{factor_id}", axum::routing::delete(admin_delete_factor))
        .layer(axum::middleware::map_response(|mut res: Response| async move {
            res.headers_mut().insert("x-supabase-api-version", HeaderValue::from_static("2024-01-01"));
            res
        }))
}

#[derive(Deserialize, Default)]
struct Params {
    provider: Option<String>,
    scopes: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    skip_http_redirect: Option<String>,
    grant_type: Option<String>,
    redirect_to: Option<String>,
    scope: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The project key gate, as Supabase's gateway applies it to `/auth/v1`.
fn require_apikey(app: &AppState, headers: &HeaderMap) -> AuthResult<()> {
    let key = headers.get("apikey").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if key.is_empty() {
        return Err(AuthError::new(401, "no_api_key", "No API key found in request"));
    }
    match app.jwt.verify(key) {
        Ok((Role::Anon | Role::ServiceRole, _)) => Ok(()),
        _ => Err(AuthError::new(401, "invalid_api_key", "Invalid API key")),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

fn require_admin(app: &AppState, headers: &HeaderMap) -> AuthResult<()> {
    require_apikey(app, headers)?;
    match bearer(headers).map(|t| app.jwt.verify(t)) {
        Some(Ok((Role::ServiceRole, _))) => Ok(()),
        Some(Ok(_)) => Err(AuthError::not_admin()),
        Some(Err(e)) => Err(AuthError::new(401, "bad_jwt", format!("invalid JWT: {e}"))),
        None => Err(AuthError::new(401, "no_authorization", "This endpoint requires a Bearer token")),
    }
}

fn body_json(b: &Bytes) -> AuthResult<Value> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(b).map_err(|_| AuthError::new(400, "bad_json", "Could not parse request body as JSON"))?;
    // PostgreSQL refuses NUL in text; SQLite would keep it: refused here for both.
    if basalt_query::value::has_nul(&v) {
        return Err(AuthError::validation("Request body must not contain \\u0000"));
    }
    if v.is_object() {
        Ok(v)
    } else {
        Err(AuthError::new(400, "bad_json", "Request body must be a JSON object"))
    }
}

fn client<'a>(addr: &'a str, headers: &'a HeaderMap) -> Client<'a> {
    Client { ip: addr, user_agent: headers.get("user-agent").and_then(|v| v.to_str().ok()) }
}

type R = Result<Response, AuthError>;

async fn settings(State(app): State<AppState>, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let s = &app.auth.settings;
    Ok(Json(json!({
        "external": {
            "email": true,
            "phone": false,
            "anonymous_users": s.anonymous_enabled,
            "google": s.external.get("google").is_some_and(|p| p.enabled),
            "github": s.external.get("github").is_some_and(|p| p.enabled),
            "apple": s.external.get("apple").is_some_and(|p| p.enabled),
        },
        "disable_signup": s.disable_signup,
        "mailer_autoconfirm": s.autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "anonymous_users_enabled": s.anonymous_enabled,
    }))
    .into_response())
}

async fn signup(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let ip = ip.to_string();
    let out = app.auth.signup(&body_json(&body)?, &client(&ip, &headers), p.redirect_to.as_deref()).await?;
    Ok(Json(out).into_response())
}

async fn token(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let ip = ip.to_string();
    let c = client(&ip, &headers);
    let body = body_json(&body)?;
    let session = match p.grant_type.as_deref() {
        Some("password") => app.auth.password_grant(&body, &c).await?,
        Some("refresh_token") => app.auth.refresh_grant(&body, &c).await?,
        Some("pkce") => app.auth.pkce_grant(&body, &c).await?,
        Some("id_token") => app.auth.id_token_grant(&body, &c).await?,
        other => {
            let mut e = AuthError::new(400, "unsupported_grant_type", format!("unsupported_grant_type: {}", other.unwrap_or_default()));
            e.oauth_error = Some("unsupported_grant_type");
            return Err(e);
        }
    };
    let mut res = Json(session.to_json()).into_response();
    if let Some(id) = session.user.get("id").and_then(Value::as_str).and_then(|i| HeaderValue::from_str(i).ok()) {
        res.headers_mut().insert("sb-auth-user-id", id);
    }
    Ok(res)
}

async fn get_user(State(app): State<AppState>, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let (_, user) = app.auth.caller(bearer(&headers)).await?;
    Ok(Json(app.auth.user_json(&user).await?).into_response())
}

async fn put_user(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let (caller, user) = app.auth.caller(bearer(&headers)).await?;
    let ip = ip.to_string();
    let out = app.auth.update_user(&caller, &user, &body_json(&body)?, p.redirect_to.as_deref(), &client(&ip, &headers)).await?;
    Ok(Json(out).into_response())
}

async fn reauthenticate(State(app): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let (_, user) = app.auth.caller(bearer(&headers)).await?;
    let ip = ip.to_string();
    app.auth.reauthenticate(&user, &client(&ip, &headers)).await?;
    Ok(Json(json!({})).into_response())
}

async fn logout(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let (caller, _) = app.auth.caller(bearer(&headers)).await?;
    let ip = ip.to_string();
    app.auth.logout(&caller, p.scope.as_deref().unwrap_or("global"), &client(&ip, &headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn recover(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let ip = ip.to_string();
    app.auth.recover(&body_json(&body)?, &client(&ip, &headers), p.redirect_to.as_deref()).await?;
    Ok(Json(json!({})).into_response())
}

async fn resend(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let ip = ip.to_string();
    app.auth.resend(&body_json(&body)?, &client(&ip, &headers), p.redirect_to.as_deref()).await?;
    Ok(Json(json!({})).into_response())
}

async fn otp(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let ip = ip.to_string();
    app.auth.otp(&body_json(&body)?, &client(&ip, &headers), p.redirect_to.as_deref()).await?;
    Ok(Json(json!({})).into_response())
}

async fn verify(State(app): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let ip = ip.to_string();
    let body = body_json(&body)?;
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    let (email, token) = match (body.get("token_hash").and_then(Value::as_str), body.get("token").and_then(Value::as_str)) {
        (Some(h), _) => (None, h),
        (None, Some(t)) => (body.get("email").and_then(Value::as_str), t),
        _ => return Err(AuthError::validation("Verify requires a token or a token hash")),
    };
    if token.is_empty() {
        return Err(AuthError::validation("Verify requires a token or a token hash"));
    }
    let (session, _) = app.auth.verify(kind, email, token, &client(&ip, &headers)).await?;
    Ok(Json(session.to_json()).into_response())
}

/// The e-mail link: verify, then send the browser on with the session in the fragment
/// (implicit flow) or the error in the fragment.
async fn verify_link(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap) -> Response {
    let ip = ip.to_string();
    let target = app.auth.settings.redirect(p.redirect_to.as_deref());
    let (kind, token) = (p.kind.as_deref().unwrap_or_default(), p.token.as_deref().unwrap_or_default());
    // A PKCE link: the auth code goes in the query, for the app's server to exchange.
    if token.starts_with("pkce_") {
        let query = match app.auth.verify_pkce(kind, token, &client(&ip, &headers)).await {
            Ok((code, _)) => format!("code={code}"),
            Err(e) => format!("error=access_denied&error_code={}&error_description={}", e.code, urlencode(&e.message)),
        };
        let joiner = if target.contains('?') { '&' } else { '?' };
        return redirect(StatusCode::SEE_OTHER, &format!("{target}{joiner}{query}"));
    }
    let result = app.auth.verify(kind, None, token, &client(&ip, &headers)).await;
    let fragment = match result {
        Ok((s, kind)) => format!(
            "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={kind}",
            s.access_token, s.expires_at, s.expires_in, s.refresh_token
        ),
        Err(e) => format!("error=access_denied&error_code={}&error_description={}", e.code, urlencode(&e.message)),
    };
    redirect(StatusCode::SEE_OTHER, &format!("{target}#{fragment}"))
}

async fn invite(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_admin(&app, &headers)?;
    let mut body = body_json(&body)?;
    body["type"] = json!("invite");
    let ip = ip.to_string();
    let out = app.auth.generate_link(&body, p.redirect_to.as_deref(), &ip).await?;
    if let (Some(to), Some(link), Some(otp)) = (out["email"].as_str(), out["action_link"].as_str(), out["email_otp"].as_str()) {
        app.auth.mailer.send(&crate::auth::mailer::Mail {
            to: to.into(),
            kind: "invite",
            subject: "You have been invited".into(),
            link: link.into(),
            otp: otp.into(),
        });
    }
    let mut user = out;
    for k in ["action_link", "email_otp", "hashed_token", "verification_type", "redirect_to"] {
        if let Some(o) = user.as_object_mut() {
            o.remove(k);
        }
    }
    Ok(Json(user).into_response())
}

async fn admin_list(State(app): State<AppState>, Query(p): Query<Params>, headers: HeaderMap) -> R {
    require_admin(&app, &headers)?;
    let page = p.page.as_deref().and_then(|s| s.parse::<i64>().ok()).filter(|n| *n > 0).unwrap_or(1);
    let per_page = p.per_page.as_deref().and_then(|s| s.parse::<i64>().ok()).filter(|n| *n > 0).unwrap_or(50).min(1000);
    let (users, total) = app.auth.admin_list(page, per_page).await?;
    let mut res = Json(json!({"users": users, "aud": "authenticated"})).into_response();
    let last = ((total + per_page - 1) / per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!("</admin/users?page={}&per_page={per_page}>; rel=\"next\"", page + 1));
    }
    links.push(format!("</admin/users?page={last}&per_page={per_page}>; rel=\"last\""));
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        h.insert("x-total-count", v);
    }
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        h.insert("link", v);
    }
    Ok(res)
}

async fn admin_create(State(app): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap, body: Bytes) -> R {
    require_admin(&app, &headers)?;
    let ip = ip.to_string();
    Ok(Json(app.auth.admin_create(&body_json(&body)?, &ip).await?).into_response())
}

async fn admin_get(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> R {
    require_admin(&app, &headers)?;
    Ok(Json(app.auth.admin_get(&id).await?).into_response())
}

async fn admin_update(State(app): State<AppState>, ClientIp(ip): ClientIp, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> R {
    require_admin(&app, &headers)?;
    let ip = ip.to_string();
    Ok(Json(app.auth.admin_update(&id, &body_json(&body)?, &ip).await?).into_response())
}

async fn admin_delete(State(app): State<AppState>, ClientIp(ip): ClientIp, Path(id): Path<String>, headers: HeaderMap) -> R {
    require_admin(&app, &headers)?;
    app.auth.admin_delete(&id, &ip.to_string()).await?;
    Ok(Json(json!({})).into_response())
}

async fn generate_link(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap, body: Bytes) -> R {
    require_admin(&app, &headers)?;
    let ip = ip.to_string();
    Ok(Json(app.auth.generate_link(&body_json(&body)?, p.redirect_to.as_deref(), &ip).await?).into_response())
}

async fn enroll(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let (caller, user) = app.auth.caller(bearer(&headers)).await?;
    Ok(Json(app.auth.enroll(&caller, &user, &body_json(&body)?).await?).into_response())
}

async fn challenge(State(app): State<AppState>, ClientIp(ip): ClientIp, Path(id): Path<String>, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let (caller, _) = app.auth.caller(bearer(&headers)).await?;
    let ip = ip.to_string();
    Ok(Json(app.auth.challenge(&caller, &id, &client(&ip, &headers)).await?).into_response())
}

async fn verify_factor(State(app): State<AppState>, ClientIp(ip): ClientIp, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> R {
    require_apikey(&app, &headers)?;
    let (caller, user) = app.auth.caller(bearer(&headers)).await?;
    let ip = ip.to_string();
    let session = app.auth.verify_factor(&caller, &user, &id, &body_json(&body)?, &client(&ip, &headers)).await?;
    Ok(Json(session.to_json()).into_response())
}

async fn unenroll(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let (caller, _) = app.auth.caller(bearer(&headers)).await?;
    Ok(Json(app.auth.unenroll(&caller, &id).await?).into_response())
}

async fn admin_factors(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> R {
    require_admin(&app, &headers)?;
    Ok(Json(app.auth.admin_factors(&id).await?).into_response())
}

async fn admin_delete_factor(State(app): State<AppState>, Path((id, factor_id)): Path<(String, String)>, headers: HeaderMap) -> R {
    require_admin(&app, &headers)?;
    Ok(Json(app.auth.admin_delete_factor(&id, &factor_id).await?).into_response())
}

/// GET /authorize?provider=…: off to the provider (a browser navigation: no API key, as on Supabase).
async fn authorize(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(p): Query<Params>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: HeaderMap,
) -> R {
    let to = provider_url(&app, &p, raw.as_deref(), None, &client(&ip.to_string(), &headers)).await?;
    Ok(redirect(StatusCode::FOUND, &to))
}

/// GET /callback: back from the provider, on to the app with a session or a code.
async fn callback(State(app): State<AppState>, ClientIp(ip): ClientIp, Query(p): Query<Params>, headers: HeaderMap) -> Response {
    let ip = ip.to_string();
    let error = p.error.as_deref().map(|e| (e, p.error_description.as_deref().unwrap_or_default()));
    let landing = app.auth.callback(p.code.as_deref(), p.state.as_deref(), error, &client(&ip, &headers)).await;
    redirect(StatusCode::FOUND, &landing.location())
}

/// A redirect whose target came partly from the request: a target that is no valid header
/// value (a control character in `redirect_to`) is a 400, never a panic.
fn redirect(status: StatusCode, to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (status, [(axum::http::header::LOCATION, v)]).into_response(),
        Err(_) => AuthError::validation("redirect_to is not a valid URL").into_response(),
    }
}

/// The provider's consent page for `/authorize` and `linkIdentity` (which names the user to link to).
async fn provider_url(app: &AppState, p: &Params, raw: Option<&str>, link: Option<&str>, client: &Client<'_>) -> AuthResult<String> {
    let pkce = json!({"code_challenge": p.code_challenge, "code_challenge_method": p.code_challenge_method});
    let extra = passed_on(raw);
    let r = AuthorizeRequest {
        provider: p.provider.as_deref().unwrap_or_default(),
        redirect_to: p.redirect_to.as_deref(),
        scopes: p.scopes.as_deref(),
        pkce: &pkce,
        extra: &extra,
        link,
    };
    app.auth.authorize(&r, client).await
}

/// supabase-js' `queryParams` (`access_type`, `prompt`, `login_hint`, …): the query parameters
/// `/authorize` does not read itself go on to the provider.
fn passed_on(raw: Option<&str>) -> Vec<(String, String)> {
    const OWN: &[&str] =
        &["provider", "redirect_to", "scopes", "code_challenge", "code_challenge_method", "flow_type", "skip_http_redirect"];
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| !OWN.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// GET /user/identities/authorize (`linkIdentity`): as `/authorize`, for the signed-in user; with
/// `skip_http_redirect=true` (what supabase-js sends) the provider's URL comes back as `{url}`.
async fn link_identity(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(p): Query<Params>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: HeaderMap,
) -> R {
    require_apikey(&app, &headers)?;
    if !app.auth.settings.manual_linking_enabled {
        return Err(AuthError::new(404, "manual_linking_disabled", "Manual linking is disabled"));
    }
    let (caller, _) = app.auth.caller(bearer(&headers)).await?;
    let to = provider_url(&app, &p, raw.as_deref(), Some(&caller.user_id), &client(&ip.to_string(), &headers)).await?;
    if p.skip_http_redirect.as_deref() == Some("true") {
        return Ok(Json(json!({"url": to})).into_response());
    }
    Ok(redirect(StatusCode::FOUND, &to))
}

/// DELETE /user/identities/{id} (`unlinkIdentity`)
async fn unlink_identity(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> R {
    require_apikey(&app, &headers)?;
    let (_, user) = app.auth.caller(bearer(&headers)).await?;
    app.auth.unlink_identity(&user, &id).await?;
    Ok(Json(json!({})).into_response())
}
