//! Token-bucket rate limits (GCRA, via `governor`) on the endpoints that hand out tokens:
//! per client address and per account, so neither one address nor a distributed guess at
//! one account gets far.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::model::{FieldError, MAX_EMAIL_LEN};

type Limiter<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Requests allowed per minute, each also the burst size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Login attempts per client address.
    pub login_per_address_per_minute: NonZeroU32,
    /// Login attempts per email address.
    pub login_per_account_per_minute: NonZeroU32,
    /// Join-token requests per client address.
    pub join_per_address_per_minute: NonZeroU32,
    /// Join-token requests per user.
    pub join_per_user_per_minute: NonZeroU32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let n = |v| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        RateLimitConfig {
            login_per_address_per_minute: n(60),
            login_per_account_per_minute: n(10),
            join_per_address_per_minute: n(300),
            join_per_user_per_minute: n(30),
        }
    }
}

fn keyed<K, C>(per_minute: NonZeroU32, clock: &C) -> Limiter<K, C>
where
    K: std::hash::Hash + Eq + Clone,
    C: Clock + Clone,
{
    RateLimiter::dashmap_with_clock(Quota::per_minute(per_minute), clock.clone())
}

/// An account as the login limits know it: the email trimmed and lower-cased (so that case
/// variations share one bucket), at most [`MAX_EMAIL_LEN`] characters. Anything longer is refused
/// before it reaches a limiter: a raw 4 MiB "email" as a map key pinned 4 MiB per attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountKey(Box<str>);

impl AccountKey {
    /// The key of whatever was typed as the email; not necessarily a valid address (a
    /// mistyped one is still counted).
    pub fn parse(email: &str) -> Result<AccountKey, FieldError> {
        let trimmed = email.trim();
        let too_long = || FieldError::new("email", "is longer than 254 characters");
        // Checked before lower-casing too, so an absurd input is never copied.
        if trimmed.len() > 4 * MAX_EMAIL_LEN {
            return Err(too_long());
        }
        let key = trimmed.to_lowercase();
        // Characters, as Email::parse and the OpenAPI document's maxLength count them.
        if key.chars().count() > MAX_EMAIL_LEN {
            return Err(too_long());
        }
        Ok(AccountKey(key.into_boxed_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A refused request and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// The limiters of the token endpoints.
pub struct RateLimits<C: Clock = DefaultClock> {
    clock: C,
    login_by_address: Limiter<IpAddr, C>,
    login_by_account: Limiter<AccountKey, C>,
    join_by_address: Limiter<IpAddr, C>,
    join_by_user: Limiter<i64, C>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits<DefaultClock> {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock(config: &RateLimitConfig, clock: C) -> Self {
        RateLimits {
            login_by_address: keyed(config.login_per_address_per_minute, &clock),
            login_by_account: keyed(config.login_per_account_per_minute, &clock),
            join_by_address: keyed(config.join_per_address_per_minute, &clock),
            join_by_user: keyed(config.join_per_user_per_minute, &clock),
            clock,
        }
    }

    /// Counts a login attempt from `address` for `account`.
    pub fn check_login(&self, address: IpAddr, account: &AccountKey) -> Result<(), RateLimited> {
        self.check(&self.login_by_address, &address)?;
        self.check(&self.login_by_account, account)
    }

    /// Counts a join-token request from `address` by `user`.
    pub fn check_join(&self, address: IpAddr, user: i64) -> Result<(), RateLimited> {
        self.check(&self.join_by_address, &address)?;
        self.check(&self.join_by_user, &user)
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded.
    pub fn retain_recent(&self) {
        self.login_by_address.retain_recent();
        self.login_by_account.retain_recent();
        self.join_by_address.retain_recent();
        self.join_by_user.retain_recent();
    }

    fn check<K>(&self, limiter: &Limiter<K, C>, key: &K) -> Result<(), RateLimited>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        limiter.check_key(key).map_err(|not_until| RateLimited {
            // Round up: a client that waits Retry-After seconds must then succeed.
            retry_after: not_until.wait_time_from(self.clock.now()) + Duration::from_millis(999),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn config(per_minute: u32) -> RateLimitConfig {
        let n = NonZeroU32::new(per_minute).expect("non-zero");
        RateLimitConfig {
            login_per_address_per_minute: NonZeroU32::new(100).expect("non-zero"),
            login_per_account_per_minute: n,
            join_per_address_per_minute: n,
            join_per_user_per_minute: n,
        }
    }

    #[test]
    fn per_account_bucket_refuses_then_refills() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(3), clock.clone());
        let ip: IpAddr = [127, 0, 0, 1].into();
        let ada = key("ada@school.edu");
        for _ in 0..3 {
            assert_eq!(limits.check_login(ip, &ada), Ok(()));
        }
        let refused = limits
            .check_login(ip, &key(" ADA@School.edu "))
            .expect_err("bucket empty, whatever the case");
        assert!(
            refused.retry_after >= Duration::from_secs(20),
            "{refused:?}"
        );
        assert_eq!(
            limits.check_login(ip, &key("bob@school.edu")),
            Ok(()),
            "other accounts unaffected"
        );
        clock.advance(Duration::from_secs(20));
        assert_eq!(limits.check_login(ip, &ada), Ok(()), "one token refilled");
    }

    fn key(email: &str) -> AccountKey {
        AccountKey::parse(email).expect("a key")
    }

    #[test]
    fn account_keys_are_normalised_and_bounded() {
        assert_eq!(key("  Ada@School.EDU\t").as_str(), "ada@school.edu");
        assert_eq!(key("not an email").as_str(), "not an email");
        let longest = format!("{}@x.y", "a".repeat(MAX_EMAIL_LEN - 4));
        assert_eq!(key(&longest).as_str().len(), MAX_EMAIL_LEN);
        for too_long in [format!("a{longest}"), "a".repeat(4 * 1024 * 1024)] {
            let refused = AccountKey::parse(&too_long).expect_err("too long");
            assert_eq!(refused.field, "email");
        }
    }

    #[test]
    fn join_limits_by_address_first() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(2), clock);
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(limits.check_join(ip, 1).is_ok());
        assert!(limits.check_join(ip, 2).is_ok());
        assert!(
            limits.check_join(ip, 3).is_err(),
            "the address has used its bucket"
        );
        assert!(limits.check_join([10, 0, 0, 2].into(), 3).is_ok());
    }
}
