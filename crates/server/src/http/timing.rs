//! `Server-Timing` (PostgREST's `server-timing-enabled`): how long the request spent verifying
//! the token, parsing, planning, in the database and shaping the response, in milliseconds.

use std::time::Instant;

use axum::http::HeaderValue;
use axum::response::Response;

/// The stages, in PostgREST's order.
const STAGES: [&str; 5] = ["jwt", "parse", "plan", "transaction", "response"];

pub struct Timing {
    /// None when disabled: marks cost nothing.
    last: Option<Instant>,
    spent: [f64; 5],
}

impl Timing {
    pub fn start(enabled: bool) -> Timing {
        Timing { last: enabled.then(Instant::now), spent: [0.0; 5] }
    }

    /// Ends `stage` now: the time since the previous mark is added to it.
    pub fn mark(&mut self, stage: &str) {
        let Some(last) = self.last else { return };
        let now = Instant::now();
        if let Some(i) = STAGES.iter().position(|s| *s == stage) {
            self.spent[i] += now.duration_since(last).as_secs_f64() * 1000.0;
        }
        self.last = Some(now);
    }

    pub fn apply(&self, res: &mut Response) {
        if self.last.is_none() {
            return;
        }
        let value: Vec<String> = STAGES.iter().zip(self.spent).map(|(s, ms)| format!("{s};dur={ms:.1}")).collect();
        if let Ok(v) = HeaderValue::from_str(&value.join(", ")) {
            res.headers_mut().insert("server-timing", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_every_stage() {
        let mut t = Timing::start(true);
        t.mark("jwt");
        t.mark("transaction");
        let mut res = Response::new(axum::body::Body::empty());
        t.apply(&mut res);
        let h = res.headers()["server-timing"].to_str().unwrap().to_string();
        assert!(
            h.starts_with("jwt;dur=") && h.contains(", parse;dur=0.0, plan;dur=0.0, transaction;dur=") && h.contains(", response;dur=0.0"),
            "{h}"
        );
        let mut off = Response::new(axum::body::Body::empty());
        Timing::start(false).apply(&mut off);
        assert!(off.headers().get("server-timing").is_none());
    }
}
