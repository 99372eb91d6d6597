//! Passwords: argon2id for new hashes; bcrypt (`$2a$`/`$2b$`/`$2y$`) accepted so users imported
//! from Supabase keep their passwords, and upgraded to argon2id on their next sign-in.
//!
//! Argon2id runs in libsodium, whose AVX2/AVX-512 code (picked at run time) hashes in about 55 %
//! of the time the pure-Rust `argon2` crate takes; sign-in is almost all hashing. The `argon2`
//! crate stays for the other argon2 hashes that can come in through imports (argon2i, argon2d,
//! version 16, several lanes).

use std::ffi::{c_char, CStr, CString};
use std::sync::{LazyLock, Once};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use libsodium_sys as sodium;

/// Argon2id with 7 MiB and 5 passes, one of OWASP's equivalent settings (with 19 MiB x 2): the
/// same defence for less memory per concurrent sign-in. Stored hashes carry their parameters, so
/// hashes made with other settings still verify.
const PASSES: u64 = 5;
const MEMORY_BYTES: usize = 7 * 1024 * 1024;

/// How every hash made with the current settings starts.
const CURRENT: &str = "$argon2id$v=19$m=7168,t=5,p=1$";

fn init() {
    static INIT: Once = Once::new();
    // SAFETY: sodium_init has no preconditions; it returns -1 only when the system's random
    // source cannot be opened, which leaves nothing safe to hash with.
    INIT.call_once(|| assert!(unsafe { sodium::sodium_init() } >= 0, "libsodium could not initialise"));
}

/// Gives the pages of this thread's hashing buffer back to the system. libsodium takes each
/// hash's 7 MiB from `malloc` (see .cargo/config.toml), and glibc keeps the freed block in the
/// thread's arena, which is the point while sign-ins keep coming; `malloc_trim` does not shrink a
/// thread's arena, so an idle hashing thread takes the block once more, drops its pages and frees
/// it. The next hash faults the pages in again, once.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the block is ours between malloc and free; only whole pages strictly inside it are
    // dropped (they read back as zeros), never the allocator's headers at either end.
    unsafe {
        let len = MEMORY_BYTES + 63;
        let block = libc::malloc(len);
        if block.is_null() {
            return;
        }
        let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
        let start = (block as usize + page).next_multiple_of(page);
        let end = (block as usize + len - page) / page * page;
        if end > start {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
        libc::free(block);
    }
}

pub fn hash(password: &str) -> Result<String, String> {
    init();
    let mut out = [0 as c_char; sodium::crypto_pwhash_argon2id_STRBYTES as usize];
    // SAFETY: `out` has the STRBYTES libsodium writes at most (NUL included); the password is
    // passed with its length, so it needs no terminator.
    let rc = unsafe {
        sodium::crypto_pwhash_argon2id_str(out.as_mut_ptr(), password.as_ptr().cast(), password.len() as u64, PASSES, MEMORY_BYTES)
    };
    if rc != 0 {
        return Err("password hashing failed (out of memory)".into());
    }
    // SAFETY: on success libsodium wrote a NUL-terminated ASCII string into `out`.
    let s = unsafe { CStr::from_ptr(out.as_ptr()) };
    s.to_str().map(str::to_string).map_err(|e| e.to_string())
}

/// A hash of a random password with the parameters of new hashes: unknown users are checked
/// against it so a failed sign-in takes as long whether or not the address exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: LazyLock<String> = LazyLock::new(|| hash(&uuid::Uuid::new_v4().to_string()).expect("hashing the dummy password"));
    &DUMMY
}

/// Checks a password against a stored hash; every path compares in constant time.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    if stored.starts_with("$argon2id$v=19$") && stored.contains(",p=1$") {
        return sodium_verify(password, stored);
    }
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

fn sodium_verify(password: &str, stored: &str) -> bool {
    init();
    let Ok(stored) = CString::new(stored) else { return false };
    // SAFETY: `stored` is NUL-terminated; the password is passed with its length.
    let rc = unsafe { sodium::crypto_pwhash_argon2id_str_verify(stored.as_ptr(), password.as_ptr().cast(), password.len() as u64) };
    rc == 0
}

/// True for hashes that should be replaced after a successful sign-in: bcrypt, and argon2 with
/// other settings. Besides moving everyone to the current hash, this keeps a failed sign-in's
/// timing the same for every address: unknown ones are checked against a current-settings hash.
pub fn needs_upgrade(stored: &str) -> bool {
    !stored.starts_with(CURRENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// Dropping the pages of the freed hashing buffer leaves the allocator whole: hashes made
    /// before and after it verify, and the block is taken and dropped again without harm.
    #[test]
    fn hashing_after_the_buffer_is_released() {
        let before = hash("kept across a release").unwrap();
        release_memory();
        assert!(verify("kept across a release", &before));
        let after = hash("made after a release").unwrap();
        release_memory();
        release_memory();
        assert!(verify("made after a release", &after) && !verify("made after a release", &before));
    }

    #[test]
    fn argon2_and_bcrypt() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with(CURRENT) && !needs_upgrade(&h), "{h}");
        assert!(verify("correct horse", &h) && !verify("wrong", &h) && !verify("", &h));
        // Hashes libsodium makes verify with the argon2 crate too, and the other way round.
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default().hash_password(b"earlier", &salt).unwrap().to_string();
        assert!(old.contains("m=19456,t=2,p=1") && verify("earlier", &old) && !verify("later", &old) && needs_upgrade(&old));
        // Parallelism above 1 and argon2d: libsodium does not take them; the argon2 crate does.
        let params = argon2::Params::new(8192, 2, 2, None).unwrap();
        let p2 =
            Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params).hash_password(b"lanes", &salt).unwrap().to_string();
        assert!(verify("lanes", &p2) && !verify("lane", &p2));
        let v16 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x10, argon2::Params::default())
            .hash_password(b"sixteen", &salt)
            .unwrap()
            .to_string();
        assert!(v16.starts_with("$argon2id$v=16$") && verify("sixteen", &v16) && !verify("seventeen", &v16));
        let b = bcrypt::hash("legacy", 4).unwrap();
        assert!(verify("legacy", &b) && !verify("nope", &b) && needs_upgrade(&b));
        assert!(!verify("x", "garbage") && !verify("x", "$argon2id$v=19$m=7168,t=5,p=1$garbage"));
        assert!(!verify("x", "$argon2id$v=19$m=7168,t=5,p=1$\0"));
        let dummy = PasswordHash::new(dummy_hash()).unwrap();
        assert_eq!(dummy.params, parsed.params, "the dummy hash costs what a real one does");
    }
}
