//! Outgoing auth e-mail. Without SMTP configured, messages go to a file outbox in the data
//! folder (`outbox/<timestamp>-<to>.json`), which tests and local development read to follow links.

use std::path::PathBuf;

use serde_json::json;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub kind: &'static str,
    pub subject: String,
    pub link: String,
    pub otp: String,
}

#[derive(Debug, Clone)]
pub struct Mailer {
    outbox: PathBuf,
}

impl Mailer {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Mailer { outbox: data_dir.join("outbox") }
    }

    /// Writes one message; failures are logged, never shown to the caller (no account enumeration).
    pub fn send(&self, mail: &Mail) {
        let body = json!({
            "to": mail.to,
            "type": mail.kind,
            "subject": mail.subject,
            "link": mail.link,
            "otp": mail.otp,
            "text": format!("{}\n\nFollow this link: {}\nOr enter the code: {}\n", mail.subject, mail.link, mail.otp),
        });
        let name = format!("{}-{}-{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%S%6f"), mail.kind, sanitize(&mail.to));
        let result = std::fs::create_dir_all(&self.outbox).and_then(|_| std::fs::write(self.outbox.join(name), body.to_string()));
        if let Err(e) = result {
            tracing::error!(error = %e, "could not write to the mail outbox");
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '@' || c == '.' { c } else { '_' }).collect()
}
