//! Rate limits on the auth endpoints that send mail or check passwords: GCRA, keyed per client
//! IP and per e-mail address, kept in the database so instances sharing one share the limits.

use crate::store::auth_sql;
use crate::store::portable::Stmt;

const WINDOW_MS: i64 = 60_000;

pub struct Limits {
    pub ip_per_minute: u32,
    pub email_per_minute: u32,
}

impl Limits {
    pub fn new(ip_per_minute: u32, email_per_minute: u32) -> Self {
        Limits { ip_per_minute: ip_per_minute.max(1), email_per_minute: email_per_minute.max(1) }
    }

    /// The statements recording one request; it is allowed when each hit returns a row.
    pub fn hits(&self, endpoint: &str, ip: &str, email: Option<&str>) -> Vec<Stmt> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut out =
            vec![auth_sql::rate_limit_hit(&format!("{endpoint}:ip:{ip}"), now, WINDOW_MS / i64::from(self.ip_per_minute), WINDOW_MS)];
        if let Some(e) = email.filter(|e| !e.is_empty()) {
            let key = format!("{endpoint}:email:{}", e.to_lowercase());
            out.push(auth_sql::rate_limit_hit(&key, now, WINDOW_MS / i64::from(self.email_per_minute), WINDOW_MS));
        }
        // Now and then, forget recovered keys so the table stays small.
        if rand::random::<u8>() == 0 {
            out.push(auth_sql::purge_rate_limits(now));
        }
        out
    }
}
