//! Statements over the MFA tables (`auth.mfa_factors`, `auth.mfa_challenges`), as GoTrue keeps them.

use serde_json::{json, Value};

use super::portable::Stmt;

const FACTOR_COLUMNS: &str =
    "id, user_id, friendly_name, factor_type, status, secret, last_used_step, failed_attempts, last_failed_at, last_challenged_at, created_at, updated_at";

pub fn factors_of(user_id: &str) -> Stmt {
    Stmt::new(format!("SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors WHERE user_id = ? ORDER BY created_at, id"), vec![json!(user_id)])
}

pub fn factor(user_id: &str, id: &str) -> Stmt {
    Stmt::new(format!("SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors WHERE id = ? AND user_id = ?"), vec![json!(id), json!(user_id)])
}

pub fn insert_factor(id: &str, user_id: &str, friendly_name: &str, secret: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.mfa_factors (id, user_id, friendly_name, factor_type, status, secret, created_at, updated_at) \
         VALUES (?, ?, ?, 'totp', 'unverified', ?, now(), now())",
        vec![json!(id), json!(user_id), json!(friendly_name), json!(secret)],
    )
}

pub fn delete_factor(user_id: &str, id: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.mfa_factors WHERE id = ? AND user_id = ? RETURNING id", vec![json!(id), json!(user_id)])
}

/// Unverified factors created before `before`: GoTrue lets them lapse rather than count forever.
pub fn delete_stale_unverified(user_id: &str, before: &str) -> Stmt {
    Stmt::new(
        "DELETE FROM auth.mfa_factors WHERE user_id = ? AND status = 'unverified' AND created_at < ?",
        vec![json!(user_id), json!(before)],
    )
}

/// The address goes in as text cast to `inet`, GoTrue's column type (SQLite's `inet()` keeps
/// the text).
pub fn insert_challenge(id: &str, factor_id: &str, ip: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO auth.mfa_challenges (id, factor_id, created_at, ip_address) VALUES (?, ?, now(), inet(CAST(? AS text)))",
        vec![json!(id), json!(factor_id), json!(ip)],
    )
}

pub fn touch_factor_challenged(factor_id: &str) -> Stmt {
    Stmt::new("UPDATE auth.mfa_factors SET last_challenged_at = now() WHERE id = ?", vec![json!(factor_id)])
}

/// The challenge, and whether `ip` is the address that asked for it.
pub fn challenge(factor_id: &str, id: &str, ip: &str) -> Stmt {
    Stmt::new(
        "SELECT id, factor_id, created_at, verified_at, coalesce(ip_address = inet(CAST(? AS text)), false) AS same_ip \
         FROM auth.mfa_challenges WHERE id = ? AND factor_id = ?",
        vec![json!(ip), json!(id), json!(factor_id)],
    )
}

/// Spends the challenge and the code's time step, once: no row back means another request
/// spent either first (a replayed code, or the same challenge verified twice).
pub fn spend(factor_id: &str, challenge_id: &str, step: i64) -> Vec<Stmt> {
    vec![
        Stmt::new(
            "UPDATE auth.mfa_challenges SET verified_at = now() WHERE id = ? AND factor_id = ? AND verified_at IS NULL RETURNING id",
            vec![json!(challenge_id), json!(factor_id)],
        ),
        Stmt::new(
            "UPDATE auth.mfa_factors SET status = 'verified', last_used_step = ?, failed_attempts = 0, updated_at = now() \
             WHERE id = ? AND (last_used_step IS NULL OR last_used_step < ?) RETURNING id",
            vec![json!(step), json!(factor_id), json!(step)],
        ),
    ]
}

/// The session after a second factor: `aal2`, and the method added to its `amr`.
pub fn raise_session(session_id: &str, amr: Value) -> Stmt {
    Stmt::new("UPDATE auth.sessions SET aal = 'aal2', amr = ?, updated_at = now() WHERE id = ?", vec![amr, json!(session_id)])
}

/// The user's other sessions still at `aal1`: a second factor ends them, as GoTrue does.
pub fn delete_weaker_sessions(user_id: &str, keep: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.sessions WHERE user_id = ? AND id <> ? AND aal <> 'aal2'", vec![json!(user_id), json!(keep)])
}

/// Other unverified factors of the user, once one is verified.
pub fn delete_other_unverified(user_id: &str, keep: &str) -> Stmt {
    Stmt::new("DELETE FROM auth.mfa_factors WHERE user_id = ? AND id <> ? AND status = 'unverified'", vec![json!(user_id), json!(keep)])
}

pub fn raised_sessions(user_id: &str) -> Stmt {
    Stmt::new("SELECT id, amr FROM auth.sessions WHERE user_id = ? AND aal = 'aal2'", vec![json!(user_id)])
}

pub fn lower_session(session_id: &str, amr: Value) -> Stmt {
    Stmt::new("UPDATE auth.sessions SET aal = 'aal1', amr = ?, updated_at = now() WHERE id = ?", vec![amr, json!(session_id)])
}

/// A wrong code: counted, the count starting over when the last failure is older than `since`.
pub fn count_failure(factor_id: &str, since: &str) -> Stmt {
    Stmt::new(
        "UPDATE auth.mfa_factors SET failed_attempts = CASE WHEN last_failed_at IS NULL OR last_failed_at < ? THEN 1 ELSE failed_attempts + 1 END, \
         last_failed_at = now() WHERE id = ?",
        vec![json!(since), json!(factor_id)],
    )
}
