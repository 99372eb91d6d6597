//! Auth e-mail through SMTP, against a local fake relay (the one third party we fake).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{send, Backend, TestApp};

/// A minimal SMTP server: accepts every message and keeps its raw DATA.
fn fake_smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let store = inbox.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().expect("clone");
                let mut lines = BufReader::new(stream);
                let _ = out.write_all(b"220 fake ESMTP\r\n");
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250-fake\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        let _ = out.write_all(b"354 go ahead\r\n");
                        let mut data = String::new();
                        let mut l = String::new();
                        while lines.read_line(&mut l).unwrap_or(0) > 0 && l.trim_end() != "." {
                            data.push_str(&l);
                            l.clear();
                        }
                        store.lock().expect("lock").push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = out.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = out.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (port, inbox)
}

async fn smtp_delivery(b: Backend) {
    let (port, inbox) = fake_smtp();
    let port = port.to_string();
    let env = [
        ("BASALT_SMTP_HOST", "127.0.0.1"),
        ("BASALT_SMTP_PORT", port.as_str()),
        ("BASALT_SMTP_TLS", "none"),
        ("BASALT_SMTP_FROM", "Basalt <auth@example.com>"),
    ];
    let Some(app) = TestApp::spawn_with(b, crate::SCHEMA, &env).await else { return };
    let (s, _) =
        send(app.as_user(Method::POST, "/auth/v1/signup", None).json(&json!({"email": "smtp@example.com", "password": "password-123"})))
            .await;
    assert_eq!(s, 200);
    let mut found = None;
    for _ in 0..100 {
        found = inbox.lock().expect("lock").iter().find(|m| m.contains("smtp@example.com")).cloned();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mail = found.expect("a confirmation mail reached the relay");
    assert!(mail.contains("Confirm your signup") && mail.contains("/auth/v1/verify?token="), "{mail}");
    assert!(!app.dir.path().join("data").join("outbox").exists(), "no outbox when SMTP is configured");
}

crate::both_backends!(smtp_delivery);
