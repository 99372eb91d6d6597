//! Passwords: argon2id for new hashes; bcrypt (`$2a$`/`$2b$`/`$2y$`) accepted so users imported
//! from Supabase keep their passwords, and upgraded to argon2id on their next sign-in.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Argon2id with 7 MiB and 5 passes, one of OWASP's equivalent settings (with 19 MiB x 2, the
/// crate's default): the same defence for less memory per concurrent sign-in, and faster here
/// because the working set stays in cache. Stored hashes carry their parameters, so hashes made
/// with other settings still verify.
fn hasher() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash no password matches, with the parameters of new hashes: unknown users are checked
/// against it so a failed sign-in takes as long whether or not the address exists.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHRzb21lc2FsdA$0s3a2Qk9cA0kYfR1bQe0rJbq3kYq1Yw8qf0h3o8Z3Uo";

pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks a password against a stored hash; both algorithms compare in constant time.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
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
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(verify("correct horse", &h) && !verify("wrong", &h));
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default().hash_password(b"earlier", &salt).unwrap().to_string();
        assert!(old.contains("m=19456,t=2") && verify("earlier", &old) && !verify("later", &old) && !needs_upgrade(&old));
        let b = bcrypt::hash("legacy", 4).unwrap();
        assert!(verify("legacy", &b) && !verify("nope", &b) && needs_upgrade(&b));
        assert!(!verify("x", "garbage"));
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let new = PasswordHash::new(&h).unwrap();
        assert_eq!(dummy.params, new.params, "the dummy hash costs what a real one does");
    }
}
