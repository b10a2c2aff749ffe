//! A UDP relay between media clients and the SFU, on loopback, that can impair the traffic:
//! drop chosen packets (every n-th, or a fraction, of the RTP packets of one stream) and cap
//! the bandwidth (a token bucket with a queue that drops at its tail), each direction of each
//! client on its own.
//!
//! The server advertises the relay's port (`media.advertised_port`), so every client sends to
//! the relay; the relay gives each client its own upstream socket toward the server's real
//! port, and the server answers to that socket. It only forwards what the two ends sent (SRTP
//! stays encrypted); it reads the plain RTP header (RFC 3550: payload type, sequence number,
//! SSRC) to pick packets and to count them per stream.
//!
//! Loss and the cap are decided by [`Path`], a sans-IO state machine fed with `now`; the tokio
//! tasks around it only move datagrams and wait for the next release.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

/// Which RTP packets a loss rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every RTP packet (not RTCP, STUN or DTLS).
    Rtp,
    /// The RTP packets of one stream. A retransmission (RTX) has its own SSRC, so a rule on the
    /// original stream lets repairs through.
    Ssrc(u32),
}

/// Which of the selected packets are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Every n-th one (the n-th, the 2n-th, …).
    EveryNth(u64),
    /// Each one with this probability (a fixed pseudo-random sequence).
    Fraction(f64),
    /// All of them.
    All,
}

/// A bandwidth cap: datagrams leave at `bits_per_second` (after a burst of one queue's
/// worth); what does not fit in the queue is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub bits_per_second: u64,
    /// Bytes the queue holds (the bucket's depth is the same).
    pub queue_bytes: usize,
}

impl Cap {
    /// A cap at `kbps` with a queue of about 100 ms at that rate (at least 8 datagrams).
    pub fn kbps(kbps: u64) -> Cap {
        Cap {
            bits_per_second: kbps * 1000,
            queue_bytes: ((kbps * 1000 / 8 / 10) as usize).max(8 * 1200),
        }
    }
}

/// What happens on one way of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    pub loss: Option<(Select, Loss)>,
    pub cap: Option<Cap>,
}

/// What passed one way of one client.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Datagrams and bytes that arrived at the relay.
    pub datagrams: u64,
    pub bytes: u64,
    /// RTP packets forwarded, per SSRC.
    pub rtp_forwarded: HashMap<u32, u64>,
    /// Dropped by the loss rule, per SSRC.
    pub lost: HashMap<u32, u64>,
    /// Dropped because the cap's queue was full.
    pub queue_drops: u64,
}

impl Counters {
    pub fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }

    pub fn forwarded(&self, ssrc: u32) -> u64 {
        self.rtp_forwarded.get(&ssrc).copied().unwrap_or(0)
    }

    pub fn rtp_forwarded_total(&self) -> u64 {
        self.rtp_forwarded.values().sum()
    }
}

/// The plain header fields of an RTP packet; `None` for RTCP and anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub pt: u8,
    pub seq: u16,
    pub ssrc: u32,
}

impl RtpHeader {
    pub fn parse(datagram: &[u8]) -> Option<RtpHeader> {
        let header = datagram.get(..12)?;
        // RFC 7983: 128..=191 is RTP or RTCP; version 2.
        if !(128..=191).contains(&header[0]) {
            return None;
        }
        // RFC 5761: RTCP packet types 192..=223 sit where marker + payload type would.
        if (192..=223).contains(&header[1]) {
            return None;
        }
        Some(RtpHeader {
            pt: header[1] & 0x7F,
            seq: u16::from_be_bytes([header[2], header[3]]),
            ssrc: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
        })
    }
}

/// One way of one client: its impairment, counters, and the cap's queue. Sans-IO.
#[derive(Debug, Default)]
pub struct Path {
    impairment: Impairment,
    counters: Counters,
    /// Selected packets seen by the loss rule (for every n-th).
    selected: u64,
    rng: u64,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Token bucket, in bytes, as of `refilled`.
    tokens: f64,
    refilled: Option<Instant>,
}

impl Path {
    pub fn set_impairment(&mut self, impairment: Impairment) {
        if impairment.loss != self.impairment.loss {
            self.selected = 0;
        }
        self.impairment = impairment;
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A datagram arrived: it is dropped, queued, or (returned) sent at once.
    pub fn arrive(&mut self, now: Instant, datagram: Vec<u8>) -> Option<Vec<u8>> {
        self.counters.datagrams += 1;
        self.counters.bytes += datagram.len() as u64;
        let rtp = RtpHeader::parse(&datagram);
        if let (Some(header), Some((select, loss))) = (rtp, self.impairment.loss) {
            let selected = match select {
                Select::Rtp => true,
                Select::Ssrc(ssrc) => header.ssrc == ssrc,
            };
            if selected && self.loses(loss) {
                *self.counters.lost.entry(header.ssrc).or_default() += 1;
                return None;
            }
        }
        let Some(cap) = self.impairment.cap else {
            if self.queue.is_empty() {
                self.count_forwarded(&datagram);
                return Some(datagram);
            }
            // The cap was just lifted and older datagrams still wait: this one goes after
            // them, as a link keeps order.
            self.queued_bytes += datagram.len();
            self.queue.push_back(datagram);
            return None;
        };
        if self.queued_bytes + datagram.len() > cap.queue_bytes {
            self.counters.queue_drops += 1;
            return None;
        }
        self.queued_bytes += datagram.len();
        self.queue.push_back(datagram);
        self.refill(now, cap);
        None
    }

    /// The next datagram whose turn has come, if any.
    pub fn release(&mut self, now: Instant) -> Option<Vec<u8>> {
        let datagram = match self.impairment.cap {
            // The cap was lifted: what waits goes at once.
            None => self.queue.pop_front()?,
            Some(cap) => {
                self.refill(now, cap);
                let size = self.queue.front()?.len() as f64;
                if self.tokens < size {
                    return None;
                }
                self.tokens -= size;
                self.queue.pop_front()?
            }
        };
        self.queued_bytes -= datagram.len();
        self.count_forwarded(&datagram);
        Some(datagram)
    }

    /// When [`Path::release`] has something to give, if anything waits.
    pub fn next_release(&self, now: Instant) -> Option<Instant> {
        let size = self.queue.front()?.len() as f64;
        let Some(cap) = self.impairment.cap else {
            return Some(now);
        };
        let missing = (size - self.tokens).max(0.0);
        let bytes_per_second = (cap.bits_per_second as f64 / 8.0).max(1.0);
        Some(now + Duration::from_secs_f64(missing / bytes_per_second))
    }

    fn refill(&mut self, now: Instant, cap: Cap) {
        let since = self.refilled.map_or(Duration::ZERO, |t| now - t);
        self.refilled = Some(now);
        let depth = cap.queue_bytes as f64;
        self.tokens =
            (self.tokens + since.as_secs_f64() * cap.bits_per_second as f64 / 8.0).min(depth);
    }

    fn loses(&mut self, loss: Loss) -> bool {
        self.selected += 1;
        match loss {
            Loss::EveryNth(n) => n > 0 && self.selected.is_multiple_of(n),
            Loss::All => true,
            Loss::Fraction(p) => {
                // xorshift64: a fixed sequence, so a run is repeatable.
                let mut x = if self.rng == 0 {
                    0x2545_F491_4F6C_DD1D
                } else {
                    self.rng
                };
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.rng = x;
                (x >> 11) as f64 / (1u64 << 53) as f64 <= p
            }
        }
    }

    fn count_forwarded(&mut self, datagram: &[u8]) {
        if let Some(header) = RtpHeader::parse(datagram) {
            *self.counters.rtp_forwarded.entry(header.ssrc).or_default() += 1;
        }
    }
}

type Paths = Arc<Mutex<HashMap<(SocketAddr, Way), Path>>>;

fn lock(paths: &Paths) -> MutexGuard<'_, HashMap<(SocketAddr, Way), Path>> {
    paths
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The relay: one socket the clients send to, one upstream socket per client.
pub struct Relay {
    front: Arc<UdpSocket>,
    paths: Paths,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    /// Binds the clients' side on 127.0.0.1 (a free port); call [`Relay::start`] once the
    /// server's media address is known.
    pub async fn bind() -> Relay {
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("the relay binds a UDP port");
        Relay {
            front: Arc::new(front),
            paths: Arc::default(),
            tasks: Arc::default(),
        }
    }

    /// The port clients send to: what the server must advertise.
    pub fn port(&self) -> u16 {
        self.front.local_addr().expect("bound").port()
    }

    /// Starts relaying between clients and the SFU at `server`.
    pub fn start(&self, server: SocketAddr) {
        let task = tokio::spawn(run_front(
            self.front.clone(),
            server,
            self.paths.clone(),
            self.tasks.clone(),
        ));
        self.tasks.lock().expect("not poisoned").push(task);
    }

    /// Impairs one way of the client whose media socket is `client` (from its next datagram;
    /// may be set before the client sends anything). `Impairment::default()` clears it.
    pub fn impair(&self, client: SocketAddr, way: Way, impairment: Impairment) {
        lock(&self.paths)
            .entry((client, way))
            .or_default()
            .set_impairment(impairment);
    }

    /// What passed one way of `client` so far.
    pub fn counters(&self, client: SocketAddr, way: Way) -> Counters {
        lock(&self.paths)
            .get(&(client, way))
            .map(|p| p.counters().clone())
            .unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
    }
}

/// Reads what clients send; the first datagram of a client opens its link to the server.
async fn run_front(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    paths: Paths,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let mut links: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0; 2048];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = buf[..len].to_vec();
        let link = match links.entry(client) {
            Entry::Occupied(link) => link.into_mut(),
            Entry::Vacant(vacant) => {
                let Some(link) = open_link(&front, server, client, &paths, &tasks).await else {
                    continue;
                };
                vacant.insert(link)
            }
        };
        let _ = link.send(datagram);
    }
}

/// Opens a client's own socket toward the server and starts the tasks of its two ways;
/// returns where the client's datagrams go.
async fn open_link(
    front: &Arc<UdpSocket>,
    server: SocketAddr,
    client: SocketAddr,
    paths: &Paths,
    tasks: &Mutex<Vec<JoinHandle<()>>>,
) -> Option<mpsc::UnboundedSender<Vec<u8>>> {
    let upstream = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    upstream.connect(server).await.ok()?;
    let upstream = Arc::new(upstream);
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    let mut started = tasks.lock().expect("not poisoned");
    started.push(tokio::spawn(run_path(
        up_rx,
        paths.clone(),
        (client, Way::Up),
        Sink::Server(upstream.clone()),
    )));
    started.push(tokio::spawn(run_path(
        down_rx,
        paths.clone(),
        (client, Way::Down),
        Sink::Client(front.clone(), client),
    )));
    started.push(tokio::spawn(read_upstream(upstream, down_tx)));
    Some(up_tx)
}

/// Reads what the server sends to one client.
async fn read_upstream(upstream: Arc<UdpSocket>, down: mpsc::UnboundedSender<Vec<u8>>) {
    let mut buf = vec![0; 2048];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(len) => {
                if down.send(buf[..len].to_vec()).is_err() {
                    return;
                }
            }
            // ICMP feedback (the server's port closed for a moment) surfaces here; go on.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

enum Sink {
    Server(Arc<UdpSocket>),
    Client(Arc<UdpSocket>, SocketAddr),
}

impl Sink {
    async fn send(&self, datagram: &[u8]) {
        // UDP: a failed send is a lost datagram.
        let _ = match self {
            Sink::Server(socket) => socket.send(datagram).await,
            Sink::Client(socket, client) => socket.send_to(datagram, client).await,
        };
    }
}

/// Moves one way's datagrams through its [`Path`] to its sink.
async fn run_path(
    mut inbox: mpsc::UnboundedReceiver<Vec<u8>>,
    paths: Paths,
    key: (SocketAddr, Way),
    sink: Sink,
) {
    // While datagrams wait for the cap, look again at least this often (the cap may change).
    const RECHECK: Duration = Duration::from_millis(20);
    loop {
        let now = Instant::now();
        let mut out = Vec::new();
        let next = {
            let mut paths = lock(&paths);
            let path = paths.entry(key).or_default();
            while let Some(datagram) = path.release(now) {
                out.push(datagram);
            }
            path.next_release(now)
        };
        for datagram in out {
            sink.send(&datagram).await;
        }
        let wake = next.map(|at| at.min(now + RECHECK));
        tokio::select! {
            received = inbox.recv() => {
                let Some(datagram) = received else { return };
                let now = Instant::now();
                let send = lock(&paths).entry(key).or_default().arrive(now, datagram);
                if let Some(datagram) = send {
                    sink.send(&datagram).await;
                }
            }
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16, size: usize) -> Vec<u8> {
        let mut packet = vec![0u8; size.max(12)];
        packet[0] = 0x80;
        packet[1] = 96;
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
        packet
    }

    #[test]
    fn headers_of_rtp_only() {
        assert_eq!(
            RtpHeader::parse(&rtp(7, 300, 20)),
            Some(RtpHeader {
                pt: 96,
                seq: 300,
                ssrc: 7
            })
        );
        let mut rtcp = rtp(7, 0, 20);
        rtcp[1] = 201; // receiver report
        assert_eq!(RtpHeader::parse(&rtcp), None);
        assert_eq!(RtpHeader::parse(&[0, 1, 0, 0]), None); // STUN
        assert_eq!(RtpHeader::parse(&[22; 30]), None); // DTLS
    }

    #[test]
    fn every_nth_packet_of_one_stream_is_lost() {
        let now = Instant::now();
        let mut path = Path::default();
        path.set_impairment(Impairment {
            loss: Some((Select::Ssrc(7), Loss::EveryNth(10))),
            cap: None,
        });
        let mut passed = 0;
        for seq in 0..100 {
            passed += usize::from(path.arrive(now, rtp(7, seq, 100)).is_some());
            // Another stream (a retransmission, audio) is untouched.
            assert!(path.arrive(now, rtp(8, seq, 100)).is_some());
        }
        assert_eq!(passed, 90);
        assert_eq!(path.counters().lost.get(&7), Some(&10));
        assert_eq!(path.counters().forwarded(8), 100);
    }

    #[test]
    fn a_fraction_is_lost_about_right() {
        let now = Instant::now();
        let mut path = Path::default();
        path.set_impairment(Impairment {
            loss: Some((Select::Rtp, Loss::Fraction(0.05))),
            cap: None,
        });
        for seq in 0..10_000 {
            path.arrive(now, rtp(7, seq, 100));
        }
        let lost = path.counters().lost_total();
        assert!((350..=650).contains(&lost), "{lost}");
    }

    #[test]
    fn a_cap_paces_and_drops_at_the_tail() {
        let start = Instant::now();
        let mut path = Path::default();
        // 80 kbit/s = 10,000 bytes per second; a queue of 5,000 bytes.
        path.set_impairment(Impairment {
            loss: None,
            cap: Some(Cap {
                bits_per_second: 80_000,
                queue_bytes: 5_000,
            }),
        });
        // A burst of 10 datagrams of 1,000 bytes: 5 fit in the queue, 5 are dropped.
        for seq in 0..10 {
            assert!(path.arrive(start, rtp(7, seq, 1000)).is_none());
        }
        assert_eq!(path.counters().queue_drops, 5);
        // The bucket starts empty: one datagram per 100 ms.
        assert!(path.release(start).is_none());
        let next = path.next_release(start).expect("something waits");
        assert_eq!(next - start, Duration::from_millis(100));
        let mut released = 0;
        for ms in (0..=1000).step_by(10) {
            while path.release(start + Duration::from_millis(ms)).is_some() {
                released += 1;
            }
            if ms == 250 {
                assert_eq!(released, 2);
            }
        }
        assert_eq!(released, 5);
        assert_eq!(path.counters().forwarded(7), 5);
        // Lifting the cap sends the rest at once.
        for seq in 10..13 {
            path.arrive(start + Duration::from_secs(1), rtp(7, seq, 1000));
        }
        path.set_impairment(Impairment::default());
        let later = start + Duration::from_millis(1001);
        assert_eq!(path.next_release(later), Some(later));
        // One arriving while those still wait goes after them, in order.
        assert!(path.arrive(later, rtp(7, 13, 1000)).is_none());
        let order: Vec<u16> = std::iter::from_fn(|| path.release(later))
            .map(|d| u16::from_be_bytes([d[2], d[3]]))
            .collect();
        assert_eq!(order, [10, 11, 12, 13]);
        assert!(path.arrive(later, rtp(7, 14, 1000)).is_some());
    }
}
