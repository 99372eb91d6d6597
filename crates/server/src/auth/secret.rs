//! The project JWT secret: from config, or generated once and kept with the data
//! (a file in the data folder on SQLite; a row in the database on PostgreSQL, so instances share it).

use std::path::Path;

use rand::Rng;

/// 48 random alphanumeric characters.
pub fn generate() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..48).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// Reads `<dir>/jwt_secret`, creating it (mode 0600) when absent.
pub fn file_secret(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("jwt_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if s.len() >= 32 {
            return Ok(s);
        }
    }
    std::fs::create_dir_all(dir)?;
    let secret = generate();
    std::fs::write(&path, &secret)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret)
}
