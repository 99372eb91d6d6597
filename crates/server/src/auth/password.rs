//! Passwords: argon2id for new hashes; bcrypt (`$2a$`/`$2b$`/`$2y$`) accepted so users imported
//! from Supabase keep their passwords, and upgraded to argon2id on their next sign-in.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks a password against a stored hash; both algorithms compare in constant time.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// True for hashes that should be replaced by argon2id after a successful sign-in.
pub fn needs_upgrade(stored: &str) -> bool {
    stored.starts_with("$2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_and_bcrypt() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h) && !verify("wrong", &h));
        let b = bcrypt::hash("legacy", 4).unwrap();
        assert!(verify("legacy", &b) && !verify("nope", &b) && needs_upgrade(&b));
        assert!(!verify("x", "garbage"));
    }
}
