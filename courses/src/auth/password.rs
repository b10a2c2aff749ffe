//! Password hashing with argon2id (the crate's default algorithm and parameters: 19 MiB and two
//! passes per hash). Hashing is deliberately slow and memory-hungry, so it runs on a small pool
//! of dedicated threads, one per core, never on the async workers and never unbounded: a class
//! of 500 students signing in at 8:00 queues behind those threads instead of running 500 hashes
//! at once on tokio's blocking pool (19 MiB each, and the allocator keeps what each of those
//! threads touched: 1.5 GiB of resident memory after 50 sign-ins, where the pool keeps a few
//! tens of MiB). The CPU time is the same either way; only the memory differs.
//!
//! Passwords the server generates itself ([`TemporaryPassword`], for a class-list import
//! without passwords) are hashed at a light cost instead: their randomness protects them, not
//! the hash's cost, and the full cost spent 2,000 times is what made a large import time out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::oneshot;

use crate::model::Password;

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub async fn hash_password(password: Password) -> Result<String, std::io::Error> {
    run(move || hash_blocking(password.expose()))
        .await
        .ok_or_else(|| std::io::Error::other("the password hashing threads are gone"))?
}

fn hash_blocking(password: &str) -> Result<String, std::io::Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| std::io::Error::other(format!("password hashing failed: {e}")))
}

/// A password the server made up for a new account: 16 characters from 31 that cannot be
/// mistaken for one another when read aloud or copied by hand (no `0`/`o`, `1`/`l`/`i`), in
/// groups of four (`k7mq-2vdx-9fht-3wpa`): 79 bits from the operating system's random source.
#[derive(Clone)]
pub struct TemporaryPassword(String);

impl TemporaryPassword {
    const ALPHABET: &'static [u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
    const CHARS: usize = 16;

    pub fn generate() -> Self {
        let mut text = String::with_capacity(Self::CHARS + 3);
        for n in 0..Self::CHARS {
            if n > 0 && n % 4 == 0 {
                text.push('-');
            }
            let index = rand::random_range(0..Self::ALPHABET.len());
            text.push(char::from(Self::ALPHABET[index]));
        }
        TemporaryPassword(text)
    }

    /// The password itself, for the one report that shows it and for the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Bits of randomness: what an attacker holding the hash must search through.
    pub fn entropy_bits() -> f64 {
        Self::CHARS as f64 * (Self::ALPHABET.len() as f64).log2()
    }
}

impl std::fmt::Debug for TemporaryPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TemporaryPassword(<redacted>)")
    }
}

/// Argon2id at 1 MiB and one pass for [`TemporaryPassword`]s. With 79 random bits, guessing
/// one from a stolen hash takes 2^78 tries on average whatever each costs, so the full cost
/// (19 MiB, two passes: 15 ms of a core here) would only slow the import: 2,000 of them took
/// 22.5 s. The PHC string carries its parameters, so verifying needs nothing special, and the
/// password the user chooses later is hashed at the full cost.
pub async fn hash_temporary_password(
    password: &TemporaryPassword,
) -> Result<String, std::io::Error> {
    let password = password.clone();
    run(move || {
        let params = Params::new(TEMPORARY_M_KIB, 1, 1, None)
            .map_err(|e| std::io::Error::other(format!("argon2 parameters: {e}")))?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| std::io::Error::other(format!("password hashing failed: {e}")))
    })
    .await
    .ok_or_else(|| std::io::Error::other("the password hashing threads are gone"))?
}

/// Memory of a temporary password's hash, in KiB.
const TEMPORARY_M_KIB: u32 = 1024;

/// Whether `password` matches the stored PHC hash. A malformed stored hash never matches.
pub async fn verify_password(password: String, hash: String) -> bool {
    run(move || verify_blocking(&password, &hash))
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

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: a queue and one thread per core taking jobs from it.
struct HashPool {
    jobs: mpsc::Sender<Job>,
}

/// Hashes running right now, and the most seen at once (for the test of the bound).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

fn threads() -> usize {
    thread::available_parallelism().map_or(2, |n| n.get())
}

fn pool() -> &'static HashPool {
    static POOL: OnceLock<HashPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for n in 0..threads() {
            let queue = queue.clone();
            // A thread that cannot start leaves the others; with none, `run` answers `None`.
            let _ = thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job, not while it runs.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                        MOST_RUNNING.fetch_max(running, Ordering::SeqCst);
                        job();
                        RUNNING.fetch_sub(1, Ordering::SeqCst);
                    }
                });
        }
        HashPool { jobs }
    })
}

/// Runs `work` on the hashing threads; `None` if they are gone.
async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(work());
    });
    pool().jobs.send(job).ok()?;
    answer.await.ok()
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

    #[tokio::test]
    async fn temporary_passwords_are_random_enough_for_a_light_hash() {
        assert!(TemporaryPassword::entropy_bits() > 78.0);
        let password = TemporaryPassword::generate();
        let text = password.expose();
        assert_eq!(text.len(), 19, "{text}");
        assert!(
            text.split('-').all(|group| group.len() == 4
                && group
                    .bytes()
                    .all(|b| TemporaryPassword::ALPHABET.contains(&b))),
            "{text}"
        );
        assert!(Password::parse(text).is_ok(), "a valid password");
        assert_ne!(text, TemporaryPassword::generate().expose());
        assert!(!format!("{password:?}").contains(text));

        let hash = hash_temporary_password(&password).await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert!(verify_password(text.to_owned(), hash.clone()).await);
        assert!(!verify_password("k7mq-2vdx-9fht-3wpa".into(), hash).await);
        // People's own passwords keep the full cost.
        let full = hash_password(Password::parse(text).expect("valid"))
            .await
            .expect("hashes");
        assert!(
            full.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{full}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_sign_ins_runs_one_hash_per_core_at_a_time() {
        let hash = hash_password(Password::parse("correct horse battery").expect("valid"))
            .await
            .expect("hashes");
        let burst: Vec<_> = (0..4 * threads() + 4)
            .map(|n| {
                let hash = hash.clone();
                tokio::spawn(async move {
                    let password = if n % 2 == 0 {
                        "correct horse battery"
                    } else {
                        "wrong"
                    };
                    (n, verify_password(password.into(), hash).await)
                })
            })
            .collect();
        for task in burst {
            let (n, matched) = task.await.expect("the task ran");
            assert_eq!(matched, n % 2 == 0, "sign-in {n} answered right");
        }
        let most = MOST_RUNNING.load(Ordering::SeqCst);
        assert!(
            (1..=threads()).contains(&most),
            "{most} hashes ran at once on {} cores",
            threads()
        );
    }
}
