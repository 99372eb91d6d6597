//! Outgoing auth e-mail: through SMTP when configured, otherwise into a file outbox in the data
//! folder (`outbox/<timestamp>-<kind>-<to>.json`), which tests and local development read to
//! follow links. Sending never blocks or fails the request (no account enumeration); failures
//! are logged.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use super::settings::SmtpSettings;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub kind: &'static str,
    pub subject: String,
    pub link: String,
    pub otp: String,
}

impl Mail {
    fn text(&self) -> String {
        if self.link.is_empty() {
            return format!("{}\n\nEnter the code: {}\n", self.subject, self.otp);
        }
        format!("{}\n\nFollow this link: {}\nOr enter the code: {}\n", self.subject, self.link, self.otp)
    }
}

#[derive(Clone)]
pub enum Mailer {
    Outbox(PathBuf),
    Smtp { transport: Box<AsyncSmtpTransport<Tokio1Executor>>, from: Mailbox },
}

impl Mailer {
    pub fn new(data_dir: &std::path::Path, smtp: Option<&SmtpSettings>) -> anyhow::Result<Self> {
        let Some(s) = smtp else { return Ok(Mailer::Outbox(data_dir.join("outbox"))) };
        let builder = match s.tls.as_str() {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)?,
        };
        let mut builder = builder.port(s.port);
        if let (Some(u), Some(p)) = (&s.user, &s.pass) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let from: Mailbox = s.from.parse().map_err(|e| anyhow::anyhow!("[auth.smtp] from: {e}"))?;
        Ok(Mailer::Smtp { transport: Box::new(builder.build()), from })
    }

    pub fn send(&self, mail: &Mail) {
        match self {
            Mailer::Outbox(dir) => write_outbox(dir, mail),
            Mailer::Smtp { transport, from } => {
                let message = mail.to.parse::<Mailbox>().map_err(|e| e.to_string()).and_then(|to| {
                    Message::builder().from(from.clone()).to(to).subject(mail.subject.clone()).body(mail.text()).map_err(|e| e.to_string())
                });
                let transport = transport.as_ref().clone();
                let kind = mail.kind;
                tokio::spawn(async move {
                    let result = match message {
                        Ok(m) => transport.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = result {
                        tracing::error!(error = %e, kind, "could not send auth e-mail");
                    }
                });
            }
        }
    }
}

fn write_outbox(dir: &std::path::Path, mail: &Mail) {
    let body = json!({
        "to": mail.to,
        "type": mail.kind,
        "subject": mail.subject,
        "link": mail.link,
        "otp": mail.otp,
        "text": mail.text(),
    });
    let name = format!("{}-{}-{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%S%6f"), mail.kind, sanitize(&mail.to));
    let result = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dir.join(name), body.to_string()));
    if let Err(e) = result {
        tracing::error!(error = %e, "could not write to the mail outbox");
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '@' || c == '.' { c } else { '_' }).collect()
}
