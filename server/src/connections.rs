//! Who may hold an HTTP connection open, with no I/O: a cap per client address and a cap on
//! the whole server, the descriptor budget that sets the latter, and a throttle for the
//! warnings a flood of refusals would otherwise write. The accept loop (`serve.rs`) asks the
//! [`ConnectionTable`] for a [`ConnectionSlot`] before it serves a connection; the slot travels
//! with the socket (into a WebSocket too) and gives its place back when the socket closes.
//!
//! Invariants: the open count per address and in total never exceed their caps; a slot is
//! counted exactly once and released exactly once (on drop).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The caps of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one client address (an IPv6 /64) may hold open.
    pub per_address: usize,
    /// Connections the server holds open at once.
    pub total: usize,
}

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds `per_address` connections already.
    AddressFull,
    /// The server holds `total` connections already.
    ServerFull,
}

impl Refusal {
    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::AddressFull => "address_full",
            Refusal::ServerFull => "server_full",
        }
    }
}

/// What a cap counts as one client: an IPv4 address, or an IPv6 /64 (one host is usually
/// given a whole /64, so counting single IPv6 addresses would let it open millions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl ClientKey {
    fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let octets = v6.octets();
                    let mut prefix = [0; 8];
                    prefix.copy_from_slice(&octets[..8]);
                    ClientKey::V6Prefix(prefix)
                }
            },
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_client: HashMap<ClientKey, usize>,
}

/// The open HTTP connections, counted per client and in total. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ConnectionTable {
    limits: ConnectionLimits,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionTable {
    pub fn new(limits: ConnectionLimits) -> Self {
        ConnectionTable {
            limits,
            counts: Arc::default(),
        }
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// A place for a new connection from `ip`, or why there is none.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let key = ClientKey::of(ip);
        let mut counts = self.lock();
        if counts.total >= self.limits.total {
            return Err(Refusal::ServerFull);
        }
        let held = counts.by_client.entry(key).or_insert(0);
        if *held >= self.limits.per_address {
            return Err(Refusal::AddressFull);
        }
        *held += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            counts: self.counts.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent under a panic elsewhere (each update is one statement).
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open connection's place in the table; dropping it gives the place back.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<Mutex<Counts>>,
    key: ClientKey,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.by_client.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                // Forget idle clients, so the map is as large as the open connections.
                counts.by_client.remove(&self.key);
            }
        }
    }
}

/// Descriptors the process needs besides HTTP connections, counted from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// The SFU's ICE-TCP connections (`TcpLimits::max_connections`), 0 without ICE-TCP.
    pub media_tcp: u64,
    /// Encoder connections (`rtmp.max_connections`), 0 with the ingest off.
    pub rtmp: u64,
    /// The database pool (`database.max_connections`).
    pub database: u64,
}

/// Everything else that holds descriptors: listening and UDP sockets, SQLite's files,
/// recording files, ffmpeg pipes and restream sockets, the runtime, stdio. A lesson that
/// records and restreams holds a few dozen; this leaves room for several at once.
pub const OTHER_DESCRIPTORS: u64 = 256;

/// The fewest HTTP connections worth serving with; below it the limit is far too low.
const MIN_HTTP_CONNECTIONS: u64 = 64;

impl Reserved {
    fn total(self) -> u64 {
        self.media_tcp + self.rtmp + self.database + OTHER_DESCRIPTORS
    }
}

/// The global cap on HTTP connections that fits a soft descriptor limit of `nofile` with
/// `reserved` kept free, so a flood of HTTP connections cannot starve the media sockets or
/// the database of descriptors (accept then fails with "Too many open files" for everyone).
/// When the limit is too low to keep that room, half the limit, and `false`: say so.
pub fn http_connection_budget(nofile: u64, reserved: Reserved) -> (usize, bool) {
    let room = nofile.saturating_sub(reserved.total());
    if room >= MIN_HTTP_CONNECTIONS {
        (usize::try_from(room).unwrap_or(usize::MAX), true)
    } else {
        (usize::try_from(nofile / 2).unwrap_or(usize::MAX), false)
    }
}

/// Lets one warning through per `period`, and counts the ones it held back.
#[derive(Debug, Clone)]
pub struct Throttle {
    period: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Throttle {
            period,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(n)` when a warning may be written now, `n` being how many were held back since
    /// the last one; `None` to stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(per_address: usize, total: usize) -> ConnectionTable {
        ConnectionTable::new(ConnectionLimits { per_address, total })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_address_at_its_cap_is_refused_while_others_are_admitted() {
        let table = table(2, 10);
        let a = [table.admit(ip("10.0.0.1")), table.admit(ip("10.0.0.1"))];
        assert!(a.iter().all(Result::is_ok));
        assert_eq!(
            table.admit(ip("10.0.0.1")).err(),
            Some(Refusal::AddressFull)
        );
        assert!(table.admit(ip("10.0.0.2")).is_ok(), "another host");
        assert_eq!(
            table.open(),
            2,
            "neither the refused nor the closed one holds a place"
        );
    }

    #[test]
    fn closing_a_connection_frees_its_place() {
        let table = table(1, 10);
        let slot = table.admit(ip("10.0.0.1")).expect("admitted");
        assert!(table.admit(ip("10.0.0.1")).is_err());
        drop(slot);
        assert_eq!(table.open(), 0);
        assert!(table.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn the_server_cap_holds_across_addresses() {
        let table = table(10, 3);
        let held: Vec<_> = (1..=3)
            .map(|i| table.admit(ip(&format!("10.0.0.{i}"))).expect("admitted"))
            .collect();
        assert_eq!(table.admit(ip("10.0.0.9")).err(), Some(Refusal::ServerFull));
        drop(held);
        assert!(table.admit(ip("10.0.0.9")).is_ok());
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64_and_mapped_ipv4_as_ipv4() {
        let table = table(2, 10);
        let _a = table.admit(ip("2001:db8:1:2::1")).expect("admitted");
        let _b = table.admit(ip("2001:db8:1:2:ffff::9")).expect("admitted");
        assert_eq!(
            table.admit(ip("2001:db8:1:2::77")).err(),
            Some(Refusal::AddressFull),
            "the same /64"
        );
        assert!(table.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _c = table.admit(ip("10.0.0.5")).expect("admitted");
        let _d = table.admit(ip("::ffff:10.0.0.5")).expect("admitted");
        assert_eq!(
            table.admit(ip("10.0.0.5")).err(),
            Some(Refusal::AddressFull)
        );
    }

    #[test]
    fn the_budget_keeps_room_for_media_rtmp_and_the_database() {
        let reserved = Reserved {
            media_tcp: 512,
            rtmp: 64,
            database: 10,
        };
        assert_eq!(
            http_connection_budget(65_536, reserved),
            (65_536 - 512 - 64 - 10 - OTHER_DESCRIPTORS as usize, true)
        );
        // The 300-descriptor process: no room to keep, so half of it, and a warning.
        assert_eq!(http_connection_budget(300, reserved), (150, false));
        let none = Reserved {
            media_tcp: 0,
            rtmp: 0,
            database: 4,
        };
        assert_eq!(http_connection_budget(1024, none), (764, true));
    }

    #[test]
    fn the_throttle_lets_one_warning_through_per_period_and_counts_the_rest() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.allow(start), Some(0));
        assert_eq!(throttle.allow(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(9)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(10)), Some(2));
        assert_eq!(throttle.allow(start + Duration::from_secs(11)), None);
    }
}
