//! Rate limits on the endpoints that hand out tokens, on governor's clock (injectable: the
//! tests run on a virtual one).
//!
//! Logins: every attempt costs its client address. A *failed* attempt costs the pair
//! (account, address), and, more generously, the account. So a stranger's failures spend the
//! stranger's buckets: twelve wrong passwords from one address used to spend the account's
//! only bucket and lock its owner out from everywhere, because it was charged before the
//! password was checked. Guessing one account from many addresses is still slowed by the
//! account's bucket: while it is empty, only addresses that signed in to that account before
//! (the owner's usual places) may try; others wait for it to refill.
//!
//! Client addresses are keyed as IPv4 addresses or IPv6 /64s (one host usually holds a whole
//! /64); accounts as [`AccountKey`]s, bounded in size.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
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
    /// Login attempts per client address, successful or not.
    pub login_per_address_per_minute: NonZeroU32,
    /// Failed logins to one account from one client address.
    pub login_failures_per_account_and_address_per_minute: NonZeroU32,
    /// Failed logins to one account from all addresses together. When they are spent, only
    /// addresses that signed in to the account before may try until the bucket refills.
    pub login_failures_per_account_per_minute: NonZeroU32,
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
            login_failures_per_account_and_address_per_minute: n(10),
            // Six addresses' worth: a school's typos never reach it, a botnet guesses at
            // most one password a second on an account.
            login_failures_per_account_per_minute: n(60),
            join_per_address_per_minute: n(300),
            join_per_user_per_minute: n(30),
        }
    }
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

/// A client address as the limits count it: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by
/// its /64.
fn client(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

fn keyed<K, C>(per_minute: NonZeroU32, clock: &C) -> Limiter<K, C>
where
    K: Hash + Eq + Clone,
    C: Clock + Clone,
{
    RateLimiter::dashmap_with_clock(Quota::per_minute(per_minute), clock.clone())
}

/// A refused request and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// Round up: a client that waits Retry-After seconds must then succeed.
fn refused(wait: Duration) -> RateLimited {
    RateLimited {
        retry_after: wait + Duration::from_millis(999),
    }
}

/// Token buckets (GCRA) charged only when told, and asked without charging: failures are
/// known only after the password was checked, but must be refused before it is. Time is an
/// argument (time since the limits' origin).
#[derive(Debug)]
struct FailureBuckets<K> {
    /// Time for one token to come back.
    interval: Duration,
    /// How far the theoretical arrival time may run ahead of now: a full burst.
    tolerance: Duration,
    /// Per key, when its bucket would be exactly empty at the steady rate.
    arrival: Mutex<HashMap<K, Duration>>,
}

impl<K: Hash + Eq> FailureBuckets<K> {
    fn per_minute(n: NonZeroU32) -> Self {
        let interval = Duration::from_secs(60) / n.get();
        FailureBuckets {
            interval,
            tolerance: interval * (n.get() - 1),
            arrival: Mutex::default(),
        }
    }

    /// How long until `key` may fail again; `None` when it may now.
    fn wait(&self, key: &K, now: Duration) -> Option<Duration> {
        let arrival = *self.lock().get(key)?;
        let allowed_at = arrival.saturating_sub(self.tolerance);
        (allowed_at > now).then(|| allowed_at - now)
    }

    fn charge(&self, key: K, now: Duration) {
        let mut arrivals = self.lock();
        let arrival = arrivals.entry(key).or_insert(now);
        *arrival = (*arrival).max(now) + self.interval;
    }

    /// Forgets keys whose buckets are full again.
    fn retain_recent(&self, now: Duration) {
        self.lock().retain(|_, arrival| *arrival > now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Duration>> {
        self.arrival.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where each account signed in lately: the places its owner uses.
#[derive(Debug, Default)]
struct KnownPlaces {
    seen: Mutex<HashMap<(AccountKey, IpAddr), Duration>>,
}

/// How long a sign-in makes its address known for the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// At most this many (account, address) pairs are remembered; past it, new places are not
/// (only sign-ins add them, so only people with passwords can fill it).
const MAX_KNOWN_PLACES: usize = 200_000;

impl KnownPlaces {
    fn remember(&self, key: (AccountKey, IpAddr), now: Duration) {
        let mut seen = self.lock();
        if seen.len() < MAX_KNOWN_PLACES || seen.contains_key(&key) {
            seen.insert(key, now);
        }
    }

    fn contains(&self, key: &(AccountKey, IpAddr), now: Duration) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|at| now.saturating_sub(*at) < KNOWN_FOR)
    }

    fn retain_recent(&self, now: Duration) {
        self.lock()
            .retain(|_, at| now.saturating_sub(*at) < KNOWN_FOR);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(AccountKey, IpAddr), Duration>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The limiters of the token endpoints.
pub struct RateLimits<C: Clock = DefaultClock> {
    clock: C,
    origin: C::Instant,
    login_by_address: Limiter<IpAddr, C>,
    failures_by_place: FailureBuckets<(AccountKey, IpAddr)>,
    failures_by_account: FailureBuckets<AccountKey>,
    known_places: KnownPlaces,
    join_by_address: Limiter<IpAddr, C>,
    join_by_user: Limiter<i64, C>,
}

impl<C: Clock> std::fmt::Debug for RateLimits<C> {
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
            origin: clock.now(),
            login_by_address: keyed(config.login_per_address_per_minute, &clock),
            failures_by_place: FailureBuckets::per_minute(
                config.login_failures_per_account_and_address_per_minute,
            ),
            failures_by_account: FailureBuckets::per_minute(
                config.login_failures_per_account_per_minute,
            ),
            known_places: KnownPlaces::default(),
            join_by_address: keyed(config.join_per_address_per_minute, &clock),
            join_by_user: keyed(config.join_per_user_per_minute, &clock),
            clock,
        }
    }

    /// Before the password is checked: counts the attempt against `address`, and refuses it
    /// when this address has failed too often on `account`, or when the account has failed
    /// too often from everywhere and this address never signed in to it.
    pub fn check_login(&self, address: IpAddr, account: &AccountKey) -> Result<(), RateLimited> {
        let address = client(address);
        self.check(&self.login_by_address, &address)?;
        let now = self.now();
        let place = (account.clone(), address);
        if let Some(wait) = self.failures_by_place.wait(&place, now) {
            return Err(refused(wait));
        }
        match self.failures_by_account.wait(account, now) {
            Some(wait) if !self.known_places.contains(&place, now) => Err(refused(wait)),
            _ => Ok(()),
        }
    }

    /// The password was wrong (or the account unknown): the address pays on this account,
    /// and the account pays.
    pub fn login_failed(&self, address: IpAddr, account: &AccountKey) {
        let now = self.now();
        self.failures_by_place
            .charge((account.clone(), client(address)), now);
        self.failures_by_account.charge(account.clone(), now);
    }

    /// The password was right: the address becomes one of the account's known places.
    pub fn login_succeeded(&self, address: IpAddr, account: &AccountKey) {
        self.known_places
            .remember((account.clone(), client(address)), self.now());
    }

    /// Counts a join-token request from `address` by `user`.
    pub fn check_join(&self, address: IpAddr, user: i64) -> Result<(), RateLimited> {
        self.check(&self.join_by_address, &client(address))?;
        self.check(&self.join_by_user, &user)
    }

    /// Forgets keys whose buckets are full again, and places not seen for long, so memory
    /// stays bounded.
    pub fn retain_recent(&self) {
        let now = self.now();
        self.login_by_address.retain_recent();
        self.failures_by_place.retain_recent(now);
        self.failures_by_account.retain_recent(now);
        self.known_places.retain_recent(now);
        self.join_by_address.retain_recent();
        self.join_by_user.retain_recent();
    }

    fn now(&self) -> Duration {
        self.clock.now().duration_since(self.origin).into()
    }

    fn check<K>(&self, limiter: &Limiter<K, C>, key: &K) -> Result<(), RateLimited>
    where
        K: Hash + Eq + Clone,
    {
        limiter
            .check_key(key)
            .map_err(|not_until| refused(not_until.wait_time_from(self.clock.now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).expect("non-zero")
    }

    fn config(per_place: u32, per_account: u32) -> RateLimitConfig {
        RateLimitConfig {
            login_per_address_per_minute: n(100),
            login_failures_per_account_and_address_per_minute: n(per_place),
            login_failures_per_account_per_minute: n(per_account),
            join_per_address_per_minute: n(2),
            join_per_user_per_minute: n(2),
        }
    }

    fn key(email: &str) -> AccountKey {
        AccountKey::parse(email).expect("a key")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    /// One attempt with the password wrong (`right: false`) or right, as the login does it.
    fn attempt<C: Clock + Clone>(
        limits: &RateLimits<C>,
        from: &str,
        account: &AccountKey,
        right: bool,
    ) -> Result<(), RateLimited> {
        limits.check_login(ip(from), account)?;
        if right {
            limits.login_succeeded(ip(from), account);
        } else {
            limits.login_failed(ip(from), account);
        }
        Ok(())
    }

    #[test]
    fn a_strangers_failures_cost_the_stranger_never_the_owner() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(3, 100), clock.clone());
        let ada = key("ada@school.edu");
        for _ in 0..3 {
            assert_eq!(attempt(&limits, "10.0.0.66", &ada, false), Ok(()));
        }
        let refused = attempt(&limits, "10.0.0.66", &key(" ADA@School.edu "), false)
            .expect_err("the stranger's bucket is spent, whatever the case");
        assert!(
            refused.retry_after >= Duration::from_secs(20),
            "{refused:?}"
        );
        // The owner, from an address that never signed in before, is not refused.
        assert_eq!(attempt(&limits, "10.0.0.1", &ada, true), Ok(()));
        // The owner's own typos are theirs: they do not touch the stranger's bucket.
        assert_eq!(attempt(&limits, "10.0.0.1", &ada, false), Ok(()));
        assert_eq!(attempt(&limits, "10.0.0.1", &ada, true), Ok(()));
        clock.advance(Duration::from_secs(20));
        assert_eq!(
            attempt(&limits, "10.0.0.66", &ada, false),
            Ok(()),
            "one token came back"
        );
    }

    #[test]
    fn signing_in_costs_no_failure_bucket() {
        let limits = RateLimits::with_clock(&config(1, 1), FakeRelativeClock::default());
        let ada = key("ada@school.edu");
        for _ in 0..50 {
            assert_eq!(attempt(&limits, "10.0.0.1", &ada, true), Ok(()));
        }
    }

    #[test]
    fn guessing_from_many_addresses_is_slowed_but_the_owners_places_still_sign_in() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(3, 10), clock.clone());
        let ada = key("ada@school.edu");
        assert_eq!(attempt(&limits, "10.0.0.1", &ada, true), Ok(()), "at home");
        // Ten addresses, one guess each: the account's bucket is spent.
        for i in 0..10 {
            assert_eq!(
                attempt(&limits, &format!("10.9.0.{i}"), &ada, false),
                Ok(())
            );
        }
        let refused = attempt(&limits, "10.9.0.200", &ada, false)
            .expect_err("an eleventh address waits for the account's bucket");
        assert!(refused.retry_after >= Duration::from_secs(6), "{refused:?}");
        // Even with the right password: a new place waits while the account is attacked.
        assert!(attempt(&limits, "10.7.0.1", &ada, true).is_err());
        // The owner's known place is not refused, even with a typo first.
        assert_eq!(attempt(&limits, "10.0.0.1", &ada, false), Ok(()));
        assert_eq!(attempt(&limits, "10.0.0.1", &ada, true), Ok(()));
        // Other accounts are untouched.
        assert_eq!(
            attempt(&limits, "10.9.0.200", &key("bob@school.edu"), false),
            Ok(())
        );
        // The account's bucket refills at its rate: one guess per six seconds.
        clock.advance(Duration::from_secs(12));
        assert_eq!(attempt(&limits, "10.9.0.201", &ada, false), Ok(()));
        assert!(attempt(&limits, "10.9.0.202", &ada, false).is_err());
    }

    #[test]
    fn an_ipv6_host_is_one_place_across_its_slash_64() {
        let limits = RateLimits::with_clock(&config(2, 100), FakeRelativeClock::default());
        let ada = key("ada@school.edu");
        assert!(attempt(&limits, "2001:db8:1:2::1", &ada, false).is_ok());
        assert!(attempt(&limits, "2001:db8:1:2::2", &ada, false).is_ok());
        assert!(
            attempt(&limits, "2001:db8:1:2:abcd::3", &ada, false).is_err(),
            "the same /64"
        );
        assert!(attempt(&limits, "2001:db8:1:3::1", &ada, false).is_ok());
    }

    #[test]
    fn forgotten_buckets_are_full_ones() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(2, 100), clock.clone());
        let ada = key("ada@school.edu");
        attempt(&limits, "10.0.0.66", &ada, false).expect("first");
        attempt(&limits, "10.0.0.66", &ada, false).expect("second");
        limits.retain_recent();
        assert!(
            attempt(&limits, "10.0.0.66", &ada, false).is_err(),
            "an empty bucket is kept"
        );
        clock.advance(Duration::from_secs(61));
        limits.retain_recent();
        assert_eq!(limits.failures_by_place.lock().len(), 0);
        assert_eq!(limits.failures_by_account.lock().len(), 0);
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
        let limits = RateLimits::with_clock(&config(2, 2), FakeRelativeClock::default());
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
