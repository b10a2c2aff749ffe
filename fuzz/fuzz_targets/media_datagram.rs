//! Arbitrary datagrams from arbitrary source addresses into a fresh `Sfu` with one or two real
//! peers, added with SDP offers that a str0m client made once (as a browser would). Interleaved
//! with timeouts; the raw input is also one datagram. The core must never panic; the demultiplexer's STUN ufrag parser is also fed
//! every datagram directly.
//!
//! To get past the demultiplexer, the harness can frame a STUN binding request that names a
//! real peer's ufrag, with or without a valid MESSAGE-INTEGRITY (the ICE password is read from
//! the SDP answer). A valid one makes the SFU learn the source address, after which arbitrary
//! bytes from that address reach the peer's `Rtc` (DTLS, SRTP, RTCP demultiplexing).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use classroom_media::{Output, PeerId, Sfu, SfuConfig, stun_binding_server_ufrag};
use classroom_protocol::{LessonId, RoomName};
use libfuzzer_sys::fuzz_target;
use str0m::ice::{StunMessage, TransId};
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

const SFU_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 3478);
/// The clients' addresses, as written in their offers' candidates.
const CLIENT_ADDRS: [SocketAddr; 2] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), 50000),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)), 50002),
];
/// Other sources: a stranger, and an IPv6 one.
const OTHER_ADDRS: [SocketAddr; 2] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)), 9),
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        4000,
    ),
];
/// Work per input is bounded: libFuzzer inputs are small, but drains must end.
const MAX_OPS: usize = 64;
const MAX_OUTPUTS: usize = 10_000;

/// The clients' offers: a publisher (audio and video) and a subscriber (receive only).
fn offers() -> &'static [String; 2] {
    static OFFERS: OnceLock<[String; 2]> = OnceLock::new();
    OFFERS.get_or_init(|| {
        let offer = |addr: SocketAddr, lines: &[(MediaKind, Direction)]| {
            let mut rtc = Rtc::new(Instant::now());
            rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a host candidate"));
            let mut change = rtc.sdp_api();
            for (kind, dir) in lines {
                change.add_media(*kind, *dir, None, None, None);
            }
            let (offer, _pending) = change.apply().expect("an offer");
            offer.to_sdp_string()
        };
        [
            offer(
                CLIENT_ADDRS[0],
                &[
                    (MediaKind::Audio, Direction::SendRecv),
                    (MediaKind::Video, Direction::SendOnly),
                ],
            ),
            offer(
                CLIENT_ADDRS[1],
                &[
                    (MediaKind::Audio, Direction::RecvOnly),
                    (MediaKind::Video, Direction::RecvOnly),
                ],
            ),
        ]
    })
}

#[derive(Debug, Arbitrary)]
enum Source {
    Client(bool),
    Other(bool),
    Any(SocketAddr),
}

impl Source {
    fn addr(&self) -> SocketAddr {
        match self {
            Source::Client(second) => CLIENT_ADDRS[usize::from(*second)],
            Source::Other(second) => OTHER_ADDRS[usize::from(*second)],
            Source::Any(addr) => *addr,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Raw bytes.
    Datagram {
        source: Source,
        /// The shared socket's address, or (rarely, misrouted) another.
        to_other: bool,
        bytes: Vec<u8>,
    },
    /// A STUN binding request naming peer `peer`'s server ufrag.
    Binding {
        source: Source,
        peer: bool,
        client_ufrag: String,
        /// Sign with the peer's real ICE password (the source is then learned).
        valid_integrity: bool,
        use_candidate: bool,
        priority: u32,
        tie_breaker: u64,
        /// Bytes written over the encoded request from `at` on (a damaged request).
        damage: Option<(u8, Vec<u8>)>,
    },
    /// Time passes.
    Advance { millis: u16 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    two_peers: bool,
    second_may_publish: bool,
    ops: Vec<Op>,
}

/// The ICE credentials in an SDP answer.
fn ice_creds(sdp: &str) -> Option<(String, String)> {
    let value = |key: &str| {
        sdp.lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .map(str::to_string)
    };
    Some((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
}

fn drain(sfu: &mut Sfu) -> Instant {
    for _ in 0..MAX_OUTPUTS {
        match sfu.poll_output() {
            Output::Timeout(at) => return at,
            Output::Transmit { .. } | Output::Event(_) | Output::Local { .. } => {}
        }
    }
    panic!("poll_output did not reach a timeout after {MAX_OUTPUTS} outputs");
}

fuzz_target!(|data: &[u8]| {
    // The whole input is first a datagram of its own (so the seeds, real STUN requests, mean
    // something to the ufrag parser), then the script of operations below.
    if let Some(ufrag) = stun_binding_server_ufrag(data) {
        assert!(!ufrag.is_empty() && !ufrag.contains(':'));
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let start = Instant::now();
    let mut now = start;
    let mut sfu = Sfu::new(now, SfuConfig::new(SFU_ADDR)).expect("a valid config");
    let room = RoomName::for_lesson(LessonId(1));
    let offers = offers();
    let mut creds = Vec::new();
    let count = if input.two_peers { 2 } else { 1 };
    for (i, offer) in offers.iter().take(count).enumerate() {
        let may_publish = i == 0 || input.second_may_publish;
        let answer = sfu
            .add_peer_with(now, PeerId(i as u64 + 1), room.clone(), offer, may_publish)
            .expect("the SFU accepts a str0m client's offer");
        creds.push(ice_creds(&answer).expect("the answer has ICE credentials"));
    }
    sfu.handle_datagram(now, CLIENT_ADDRS[0], SFU_ADDR, data);
    let mut deadline = drain(&mut sfu);
    let hmac = str0m::crypto::from_feature_flags().sha1_hmac_provider;

    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Datagram {
                source,
                to_other,
                bytes,
            } => {
                // A ufrag the demultiplexer reads is never empty and never holds the colon.
                if let Some(ufrag) = stun_binding_server_ufrag(&bytes) {
                    assert!(!ufrag.is_empty() && !ufrag.contains(':'));
                }
                let destination = if to_other { OTHER_ADDRS[0] } else { SFU_ADDR };
                sfu.handle_datagram(now, source.addr(), destination, &bytes);
            }
            Op::Binding {
                source,
                peer,
                client_ufrag,
                valid_integrity,
                use_candidate,
                priority,
                tie_breaker,
                damage,
            } => {
                let Some((ufrag, pwd)) = creds.get(usize::from(peer)) else {
                    continue;
                };
                let username = format!("{ufrag}:{client_ufrag}");
                let message = StunMessage::binding_request(
                    &username,
                    TransId::new(),
                    true,
                    tie_breaker,
                    priority,
                    use_candidate,
                );
                let mut buf = vec![0; 2048];
                let password = valid_integrity.then_some(pwd.as_bytes());
                let Ok(len) = message.to_bytes(password, &mut buf, |key, payloads| {
                    hmac.sha1_hmac(key, payloads)
                }) else {
                    continue;
                };
                buf.truncate(len);
                match damage {
                    Some((at, bytes)) => {
                        for (b, new) in buf.iter_mut().skip(usize::from(at)).zip(bytes) {
                            *b = new;
                        }
                    }
                    // An intact request is routed by the ufrag the harness put in it.
                    None => assert_eq!(stun_binding_server_ufrag(&buf), Some(ufrag.as_str())),
                }
                sfu.handle_datagram(now, source.addr(), SFU_ADDR, &buf);
            }
            Op::Advance { millis } => {
                now += Duration::from_millis(u64::from(millis));
            }
        }
        if now >= deadline {
            sfu.handle_timeout(now);
        }
        deadline = drain(&mut sfu);
        assert!(deadline >= start, "a deadline before the start");
        let stats = sfu.stats();
        assert!(stats.peers <= count as u64);
    }
    // The connect timeout ends every peer that did not connect; nothing panics on the way.
    now += Duration::from_secs(31);
    sfu.handle_timeout(now);
    drain(&mut sfu);
});
