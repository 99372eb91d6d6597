//! The HTTP ceiling of the benchmark: what a bare axum server on this machine answers per second.
//! `basalt-bench-ceiling [ADDR]` serves `GET /` -> `hello` (default 127.0.0.1:8091).

use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8091".to_string());
    let app = Router::new().route("/", get(|| async { "hello" })).route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    println!("ceiling listening on http://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or(addr));
    axum::serve(listener, app).await.unwrap_or_else(|e| panic!("serve: {e}"));
}
