//! The hello ceiling with a fixed amount of work per request: `spin ADDR MICROS` answers
//! `GET /` with "hello" after spinning for MICROS µs. Not part of `bench/run`: it measures how
//! the ceiling falls as a server's own work per request grows, on the same cores as wrk (see
//! the twenty-first round in bench/README.md).

use std::time::{Duration, Instant};

use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8092".to_string());
    let work = Duration::from_micros(args.next().and_then(|m| m.parse().ok()).unwrap_or(0));
    let app = Router::new().route(
        "/",
        get(move || async move {
            let start = Instant::now();
            while start.elapsed() < work {
                std::hint::spin_loop();
            }
            "hello"
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    axum::serve(listener, app).await.unwrap_or_else(|e| panic!("serve: {e}"));
}
