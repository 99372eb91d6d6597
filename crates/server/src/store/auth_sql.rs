//! Statements over Basalt's auth tables (portable SQL: `?` placeholders, `auth.` names).

use serde_json::{json, Value};

use super::portable::Stmt;

pub const USER_COLUMNS: &str = "id, aud, role, email, encrypted_password, email_confirmed_at, invited_at, confirmation_sent_at, \
    recovery_sent_at, email_change, email_change_sent_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, phone, \
    phone_confirmed_at, banned_until, is_anonymous, created_at, updated_at";

pub fn user_by_id(id: &str) -> Stmt {
    Stmt::new(format!("SELECT {USER_COLUMNS} FROM auth.users WHERE id = ?"), vec![json!(id)])
}

pub fn user_by_email(email: &str) -> Stmt {
    Stmt::new(format!("SELECT {USER_COLUMNS} FROM auth.users WHERE lower(email) = lower(?)"), vec![json!(email)])
}

pub fn identities_of(user_id: &str) -> Stmt {
    Stmt::new(
        "SELECT id, provider_id, user_id, identity_data, provider, email, last_sign_in_at, created_at, updated_at FROM auth.identities WHERE user_id = ? ORDER BY created_at",
        vec![json!(user_id)],
    )
}

/// The fields of a new user row.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub confirmed: bool,
    pub app_metadata: Value,
    pub user_metadata: Value,
    pub is_anonymous: bool,
    pub invited: bool,
    /// The client's address, for the sign-up's auth event (empty when an admin creates the user).
    pub ip: &'a str,
}

pub fn insert_user(u: &NewUser) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at, invited_at, raw_app_meta_data, raw_user_meta_data, is_anonymous, created_at, updated_at) \
         VALUES (?, ?, ?, CASE WHEN ? THEN now() END, CASE WHEN ? THEN now() END, ?, ?, ?, now(), now())",
        vec![
            json!(u.id),
            json!(u.email),
            json!(u.password_hash),
            json!(u.confirmed),
            json!(u.invited),
            u.app_metadata.clone(),
            u.user_metadata.clone(),
            json!(u.is_anonymous),
        ],
    )
}

pub fn insert_identity(id: &str, user_id: &str, provider: &str, provider_id: &str, email: Option<&str>, data: Value) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.identities (id, provider_id, user_id, identity_data, provider, email, last_sign_in_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, now(), now(), now())",
        vec![json!(id), json!(provider_id), json!(user_id), data, json!(provider), json!(email)],
    )
}

/// Sets one user column; `column` is one of Basalt's own names, never user input.
pub fn set_user_field(user_id: &str, column: &'static str, value: Value) -> Stmt {
    Stmt::new(format!("UPDATE auth.users SET {column} = ?, updated_at = now() WHERE id = ?"), vec![value, json!(user_id)])
}

pub fn touch_user_now(user_id: &str, column: &'static str) -> Stmt {
    Stmt::new(format!("UPDATE auth.users SET {column} = now(), updated_at = now() WHERE id = ?"), vec![json!(user_id)])
}

pub fn confirm_email(user_id: &str) -> Stmt {
    Stmt::new(
        "UPDATE auth.users SET email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now() WHERE id = ?",
        vec![json!(user_id)],
    )
}

pub fn delete_user(user_id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.users WHERE id = ? RETURNING id", vec![json!(user_id)])
}

pub fn count_users() -> Stmt {
    Stmt::new("SELECT count(*) AS n FROM auth.users", vec![])
}

/// An auth event in GoTrue's `auth.audit_log_entries`, with GoTrue's payload: the action
/// (`login`, `logout`, `token_refreshed`, `user_signedup`, `user_modified`,
/// `user_updated_password`, `user_deleted`), who did it, and `traits`. Its triggers chain it
/// into Basalt's audit trail like any audited row.
pub fn auth_event(action: &str, log_type: &str, actor_id: &str, actor_username: &str, traits: Option<Value>, ip: &str) -> Stmt {
    let mut payload =
        json!({"action": action, "actor_id": actor_id, "actor_username": actor_username, "actor_via_sso": false, "log_type": log_type});
    if let Some(t) = traits {
        payload["traits"] = t;
    }
    Stmt::new(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address) \
         VALUES ('00000000-0000-0000-0000-000000000000', ?, ?, now(), ?)",
        vec![json!(uuid::Uuid::new_v4().to_string()), payload, json!(ip)],
    )
}

pub fn list_users(limit: i64, offset: i64) -> Stmt {
    Stmt::new(format!("SELECT {USER_COLUMNS} FROM auth.users ORDER BY created_at, id LIMIT ? OFFSET ?"), vec![json!(limit), json!(offset)])
}

pub fn insert_session(id: &str, user_id: &str, amr: Value, user_agent: Option<&str>, ip: Option<&str>) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.sessions (id, user_id, aal, amr, user_agent, ip, created_at, updated_at) VALUES (?, ?, 'aal1', ?, ?, ?, now(), now())",
        vec![json!(id), json!(user_id), amr, json!(user_agent), json!(ip)],
    )
}

pub fn session(id: &str) -> Stmt {
    Stmt::new("SELECT id, user_id, amr, created_at FROM auth.sessions WHERE id = ?", vec![json!(id)])
}

pub fn touch_session(id: &str) -> Stmt {
    Stmt::new("UPDATE auth.sessions SET refreshed_at = now(), updated_at = now() WHERE id = ?", vec![json!(id)])
}

pub fn delete_session(id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.sessions WHERE id = ?", vec![json!(id)])
}

pub fn delete_sessions_of(user_id: &str, except: Option<&str>) -> Stmt {
    match except {
        Some(keep) => Stmt::new("DELETE FROM auth.sessions WHERE user_id = ? AND id <> ?", vec![json!(user_id), json!(keep)]),
        None => Stmt::new("DELETE FROM auth.sessions WHERE user_id = ?", vec![json!(user_id)]),
    }
}

pub fn insert_refresh_token(token_hash: &str, user_id: &str, session_id: &str, parent: Option<&str>) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.refresh_tokens (token, user_id, revoked, parent, session_id, created_at, updated_at) VALUES (?, ?, false, ?, ?, now(), now())",
        vec![json!(token_hash), json!(user_id), json!(parent), json!(session_id)],
    )
}

pub fn refresh_token(token_hash: &str) -> Stmt {
    Stmt::new(
        "SELECT id, token, user_id, revoked, parent, session_id, updated_at FROM auth.refresh_tokens WHERE token = ?",
        vec![json!(token_hash)],
    )
}

/// The session's newest token that is still valid.
pub fn active_refresh_token(session_id: &str) -> Stmt {
    Stmt::new(
        "SELECT id, token, parent FROM auth.refresh_tokens WHERE session_id = ? AND revoked = false ORDER BY id DESC LIMIT 1",
        vec![json!(session_id)],
    )
}

/// Drops every refresh token of a session (it continues under a new one).
pub fn delete_session_tokens(session_id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.refresh_tokens WHERE session_id = ?", vec![json!(session_id)])
}

/// Revokes a token if still valid; returns its id when this call revoked it.
pub fn revoke_refresh_token(id: i64) -> Stmt {
    Stmt::new(
        "UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = ? AND revoked = false RETURNING id",
        vec![json!(id)],
    )
}

pub fn insert_one_time_token(id: &str, user_id: &str, kind: &str, token_hash: &str, relates_to: &str, expires_at: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, now())",
        vec![json!(id), json!(user_id), json!(kind), json!(token_hash), json!(relates_to), json!(expires_at)],
    )
}

/// When the user's current token of `kind` was made (no row: none).
pub fn one_time_token_created(user_id: &str, kind: &str) -> Stmt {
    Stmt::new(
        "SELECT created_at FROM auth.one_time_tokens WHERE user_id = ? AND token_type = ? ORDER BY created_at DESC LIMIT 1",
        vec![json!(user_id), json!(kind)],
    )
}

pub fn one_time_token(token_hash: &str) -> Stmt {
    Stmt::new(
        "SELECT id, user_id, token_type, relates_to, expires_at FROM auth.one_time_tokens WHERE token_hash = ?",
        vec![json!(token_hash)],
    )
}

/// A PKCE flow (`flowType: 'pkce'`): the client's code challenge, and the auth code its
/// verifier will exchange once the mailed link is followed. Earlier flows of the same kind for
/// the user go first ([`delete_flow_states`]).
pub fn insert_flow_state(id: &str, user_id: &str, auth_code: &str, method: &str, challenge: &str, authentication_method: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, provider_type, authentication_method, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'email', ?, now(), now())",
        vec![json!(id), json!(user_id), json!(auth_code), json!(method), json!(challenge), json!(authentication_method)],
    )
}

/// An OAuth PKCE flow, opened by `/authorize` before anyone is signed in: the user and the
/// moment the code is issued are filled in by the callback ([`finish_oauth_flow`]).
pub fn insert_oauth_flow_state(id: &str, auth_code: &str, method: &str, challenge: &str, provider: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, provider_type, authentication_method, created_at, updated_at) \
         VALUES (?, NULL, ?, ?, ?, ?, 'oauth', now(), now())",
        vec![json!(id), json!(auth_code), json!(method), json!(challenge), json!(provider)],
    )
}

/// Once only: a flow already finished returns no row.
pub fn finish_oauth_flow(id: &str, user_id: &str) -> Stmt {
    Stmt::new(
        "UPDATE auth.flow_state SET user_id = ?, auth_code_issued_at = now(), updated_at = now() \
         WHERE id = ? AND user_id IS NULL AND authentication_method = 'oauth' RETURNING auth_code",
        vec![json!(user_id), json!(id)],
    )
}

pub fn delete_identities_of(user_id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.identities WHERE user_id = ?", vec![json!(user_id)])
}

/// OAuth flows whose browser never came back (their `state` has lapsed).
pub fn delete_lapsed_oauth_flows(before: &str) -> Stmt {
    Stmt::new(
        "DELETE FROM auth.flow_state WHERE authentication_method = 'oauth' AND user_id IS NULL AND created_at < ?",
        vec![json!(before)],
    )
}

pub fn delete_identity(id: &str, user_id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.identities WHERE id = ? AND user_id = ?", vec![json!(id), json!(user_id)])
}

pub fn identity_by_provider(provider: &str, provider_id: &str) -> Stmt {
    Stmt::new("SELECT id, user_id FROM auth.identities WHERE provider = ? AND provider_id = ?", vec![json!(provider), json!(provider_id)])
}

pub fn refresh_identity(id: &str, data: Value, email: Option<&str>) -> Stmt {
    Stmt::new(
        "UPDATE auth.identities SET identity_data = ?, email = ?, last_sign_in_at = now(), updated_at = now() WHERE id = ?",
        vec![data, json!(email), json!(id)],
    )
}

pub fn delete_flow_states(user_id: &str, authentication_method: &str) -> Stmt {
    Stmt::new(
        "DELETE FROM auth.flow_state WHERE user_id = ? AND authentication_method = ?",
        vec![json!(user_id), json!(authentication_method)],
    )
}

pub fn flow_state_for(user_id: &str, authentication_method: &str) -> Stmt {
    Stmt::new(
        "SELECT id, auth_code FROM auth.flow_state WHERE user_id = ? AND authentication_method = ? ORDER BY created_at DESC LIMIT 1",
        vec![json!(user_id), json!(authentication_method)],
    )
}

pub fn issue_auth_code(id: &str) -> Stmt {
    Stmt::new("UPDATE auth.flow_state SET auth_code_issued_at = now(), updated_at = now() WHERE id = ?", vec![json!(id)])
}

pub fn flow_state_by_code(auth_code: &str) -> Stmt {
    Stmt::new(
        "SELECT id, user_id, code_challenge_method, code_challenge, authentication_method, auth_code_issued_at FROM auth.flow_state WHERE auth_code = ?",
        vec![json!(auth_code)],
    )
}

pub fn delete_flow_state(id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.flow_state WHERE id = ? RETURNING id", vec![json!(id)])
}

pub fn delete_one_time_tokens(user_id: &str, kind: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.one_time_tokens WHERE user_id = ? AND token_type = ?", vec![json!(user_id), json!(kind)])
}

/// A signup hook's row: `table` and `columns` come from the validated catalog.
pub fn insert_row(table: &str, columns: &[String], values: Vec<Value>) -> Stmt {
    let cols: Vec<String> = columns.iter().map(|c| basalt_schema::ident::quote(c)).collect();
    let marks = vec!["?"; columns.len()].join(", ");
    Stmt::new(format!("INSERT INTO {} ({}) VALUES ({marks})", basalt_schema::ident::quote(table), cols.join(", ")), values)
}

/// One imported user (from an export of Supabase's auth.users); existing ids or e-mails are skipped.
pub fn import_user(u: &serde_json::Map<String, Value>) -> Stmt {
    let get = |k: &str| u.get(k).cloned().filter(|v| !v.is_null() && v.as_str() != Some("")).unwrap_or(Value::Null);
    // Exports print timestamps as `2024-01-01 10:00:00.123+00`; store them canonically.
    let ts = |k: &str| match get(k) {
        Value::String(s) => basalt_query::value::canonical_timestamptz(&s).map(Value::from).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let meta = |k: &str| match u.get(k) {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| json!({})),
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    };
    Stmt::new(
        "INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, phone, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(?, now()), now()) ON CONFLICT DO NOTHING RETURNING id",
        vec![
            get("id"),
            get("email"),
            get("encrypted_password"),
            ts("email_confirmed_at"),
            meta("raw_app_meta_data"),
            meta("raw_user_meta_data"),
            get("phone"),
            ts("created_at"),
        ],
    )
}

/// One request against a GCRA limit: moves the key's theoretical arrival time (`tat`, ms) on by
/// `interval_ms` unless that would put it more than `window_ms` ahead of now. Returns a row
/// when the request is allowed. Atomic, so instances sharing a database share the limit.
pub fn rate_limit_hit(key: &str, now_ms: i64, interval_ms: i64, window_ms: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.rate_limits AS r (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE \
         SET tat = (CASE WHEN r.tat > ? THEN r.tat ELSE ? END) + ? \
         WHERE (CASE WHEN r.tat > ? THEN r.tat ELSE ? END) + ? - ? <= ? RETURNING tat",
        vec![
            json!(key),
            json!(now_ms + interval_ms),
            json!(now_ms),
            json!(now_ms),
            json!(interval_ms),
            json!(now_ms),
            json!(now_ms),
            json!(interval_ms),
            json!(now_ms),
            json!(window_ms),
        ],
    )
}

/// Forgets keys whose limits have fully recovered (their arrival time is in the past).
pub fn purge_rate_limits(now_ms: i64) -> Stmt {
    Stmt::new("DELETE FROM auth.rate_limits WHERE tat < ?", vec![json!(now_ms)])
}
