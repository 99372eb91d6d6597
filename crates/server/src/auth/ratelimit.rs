//! Rate limits on the auth endpoints that send mail or check passwords: GCRA (governor),
//! keyed per client IP and per e-mail address.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct Limits {
    by_ip: DefaultKeyedRateLimiter<String>,
    by_email: DefaultKeyedRateLimiter<String>,
}

impl Limits {
    pub fn new(ip_per_minute: u32, email_per_minute: u32) -> Self {
        let q = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Limits { by_ip: RateLimiter::keyed(q(ip_per_minute)), by_email: RateLimiter::keyed(q(email_per_minute)) }
    }

    /// True when the request may go on.
    pub fn check(&self, endpoint: &str, ip: &str, email: Option<&str>) -> bool {
        let ip_ok = self.by_ip.check_key(&format!("{endpoint}:{ip}")).is_ok();
        let email_ok = email.is_none_or(|e| self.by_email.check_key(&format!("{endpoint}:{}", e.to_lowercase())).is_ok());
        ip_ok && email_ok
    }
}
