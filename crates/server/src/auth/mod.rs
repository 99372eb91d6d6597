//! Authentication: the project JWT secret, the anon/service_role keys, and who a request is.

pub mod jwt;
pub mod secret;

pub use jwt::{JwtKeys, Role};
