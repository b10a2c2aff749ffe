//! Password hashing with argon2id (the crate's default algorithm and parameters). Hashing is
//! deliberately slow, so it runs on the blocking pool, never on the async workers.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::model::Password;

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub async fn hash_password(password: Password) -> Result<String, std::io::Error> {
    tokio::task::spawn_blocking(move || hash_blocking(password.expose()))
        .await
        .map_err(std::io::Error::other)?
}

fn hash_blocking(password: &str) -> Result<String, std::io::Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| std::io::Error::other(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the stored PHC hash. A malformed stored hash never matches.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
        .await
        .unwrap_or(false)
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verifies against `hash`, or against a throwaway hash when the account does not exist, so
/// that a login for an unknown email takes as long as one with a wrong password.
pub async fn verify_password_or_dummy(password: String, hash: Option<String>) -> bool {
    match hash {
        Some(hash) => verify_password(password, hash).await,
        None => {
            let dummy = dummy_hash().to_string();
            verify_password(password, dummy).await;
            false
        }
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking(&super::random_token(16)).unwrap_or_else(|_| String::from("$argon2id$"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let password = Password::parse("correct horse battery").expect("valid");
        let first = hash_password(password.clone()).await.expect("hashes");
        let second = hash_password(password).await.expect("hashes");
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("correct horse battery".into(), first.clone()).await);
        assert!(!verify_password("wrong horse battery".into(), first).await);
        assert!(!verify_password("anything".into(), "not a hash".into()).await);
        assert!(!verify_password_or_dummy("anything".into(), None).await);
    }
}
