//! Authentication: the project JWT secret and keys, and the GoTrue-compatible auth service.

pub mod claim_path;
pub mod error;
pub mod id_token;
pub mod jwt;
pub mod mailer;
pub mod mfa;
pub mod oauth;
#[allow(unsafe_code)] // libsodium's argon2id, behind a safe API of three functions
pub mod password;
pub mod ratelimit;
pub mod secret;
pub mod service;
pub mod settings;
pub mod tokens;

pub use jwt::{JwtKeys, Role};
