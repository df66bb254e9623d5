//! Argon2id password hashes, computed off the async threads (each takes tens of milliseconds).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
    })
    .await?
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when the account doesn't exist so that sign-in
/// takes the same time either way.
pub async fn decoy_hash() -> String {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async {
            let mut random = [0u8; 24];
            let _ = getrandom::fill(&mut random);
            hash(hex::encode(random)).await.unwrap_or_default()
        })
        .await
        .clone()
}

/// Refuses passwords too weak to be worth storing.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    Ok(())
}
