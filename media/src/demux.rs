//! Which peer an incoming datagram belongs to.
//!
//! All peers share one UDP port, so every datagram is routed before any `Rtc` sees it:
//!
//! 1. by the transport and remote address it came from (a map keyed by the source of the
//!    5-tuple; the local half of the tuple is the one shared UDP socket, or the one TCP
//!    listening port, where the remote address names the connection), learned when a peer's
//!    first STUN binding request passes its integrity check;
//! 2. failing that, for a STUN binding request only, by our ICE username fragment: the
//!    USERNAME attribute reads `server-ufrag:client-ufrag` and the server ufrag is unique per
//!    peer.
//!
//! Anything else is dropped and counted. Parsing never panics on hostile input.

use std::collections::HashMap;
use std::net::SocketAddr;

use foldhash::fast::RandomState;

use crate::{PeerId, Transport};

/// STUN message type of a binding request (RFC 5389 §6: method 0x001, class request).
const BINDING_REQUEST: u16 = 0x0001;
/// The fixed magic cookie every RFC 5389 STUN message carries at bytes 4..8.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Attribute type of USERNAME.
const ATTR_USERNAME: u16 = 0x0006;
const STUN_HEADER_LEN: usize = 20;

/// Where [`Demux::route`] sends a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The source address is known: hand the datagram to this peer.
    Known(PeerId),
    /// A STUN binding request whose server ufrag belongs to this peer. The peer's ICE agent
    /// still has to verify the message integrity before the source may be learned.
    ByUfrag(PeerId),
    /// A STUN binding request naming a ufrag that no peer owns.
    UnknownUfrag,
    /// Not STUN, or STUN without a usable USERNAME, from an address no peer owns.
    UnknownSource,
}

/// The routing tables: remote address → peer and server ufrag → peer.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    // foldhash, seeded per process: as fast as FxHash here (it runs for every datagram), and
    // the keys looked up come off the network.
    by_addr: HashMap<(Transport, SocketAddr), PeerId, RandomState>,
    by_ufrag: HashMap<String, PeerId, RandomState>,
}

impl Demux {
    pub(crate) fn route(&self, transport: Transport, source: SocketAddr, datagram: &[u8]) -> Route {
        if let Some(peer) = self.by_addr.get(&(transport, source)) {
            return Route::Known(*peer);
        }
        let Some(ufrag) = binding_request_server_ufrag(datagram) else {
            return Route::UnknownSource;
        };
        match self.by_ufrag.get(ufrag) {
            Some(peer) => Route::ByUfrag(*peer),
            None => Route::UnknownUfrag,
        }
    }

    /// Whether a ufrag is taken; server ufrags must be unique across peers.
    pub(crate) fn has_ufrag(&self, ufrag: &str) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    pub(crate) fn insert_ufrag(&mut self, ufrag: String, peer: PeerId) {
        self.by_ufrag.insert(ufrag, peer);
    }

    /// Learns a remote address. Returns false if it was already known.
    pub(crate) fn insert_addr(&mut self, addr: (Transport, SocketAddr), peer: PeerId) -> bool {
        self.by_addr.insert(addr, peer) != Some(peer)
    }

    /// Whether datagrams from this address reach a peer.
    pub(crate) fn knows(&self, addr: (Transport, SocketAddr)) -> bool {
        self.by_addr.contains_key(&addr)
    }

    /// Forgets a peer's ufrag and addresses.
    pub(crate) fn remove(&mut self, ufrag: &str, addrs: &[(Transport, SocketAddr)]) {
        self.by_ufrag.remove(ufrag);
        for addr in addrs {
            self.by_addr.remove(addr);
        }
    }
}

/// The server half of the USERNAME of a STUN binding request, or `None` for anything else.
///
/// Only the framing is checked here (header, cookie, attribute bounds); integrity is the ICE
/// agent's job once the datagram has reached the one peer the ufrag names.
pub(crate) fn binding_request_server_ufrag(datagram: &[u8]) -> Option<&str> {
    let header = datagram.get(..STUN_HEADER_LEN)?;
    let message_type = u16::from_be_bytes([header[0], header[1]]);
    if message_type != BINDING_REQUEST || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attrs = datagram.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    while let Some(attr_header) = attrs.get(..4) {
        let attr_type = u16::from_be_bytes([attr_header[0], attr_header[1]]);
        let len = usize::from(u16::from_be_bytes([attr_header[2], attr_header[3]]));
        let value = attrs.get(4..4 + len)?;
        if attr_type == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (server, _client) = username.split_once(':')?;
            return (!server.is_empty()).then_some(server);
        }
        // Attribute values are padded to a multiple of four bytes.
        let padded = 4 + len.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request framed like a browser's (USERNAME, then an integrity attribute).
    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        // MESSAGE-INTEGRITY (0x0008), 20 bytes of HMAC we do not check here.
        attrs.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        attrs.extend_from_slice(&[0xAB; 20]);

        let mut msg = Vec::new();
        msg.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn server_ufrag_is_parsed_from_username() {
        let msg = binding_request(b"srvA:cli1");
        assert_eq!(binding_request_server_ufrag(&msg), Some("srvA"));
        // Odd lengths exercise the padding.
        let msg = binding_request(b"abcde:xyz12");
        assert_eq!(binding_request_server_ufrag(&msg), Some("abcde"));
    }

    #[test]
    fn username_is_found_after_other_attributes() {
        let mut msg = binding_request(b"srvB:cli2");
        // Insert a PRIORITY attribute (0x0024, 4 bytes) before USERNAME.
        let priority = [0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        msg.splice(STUN_HEADER_LEN..STUN_HEADER_LEN, priority);
        let len = u16::from_be_bytes([msg[2], msg[3]]) + 8;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(binding_request_server_ufrag(&msg), Some("srvB"));
    }

    #[test]
    fn non_binding_and_malformed_stun_have_no_ufrag() {
        let good = binding_request(b"srv:cli");
        // A binding success response (0x0101) is not a request.
        let mut response = good.clone();
        response[0..2].copy_from_slice(&0x0101u16.to_be_bytes());
        assert_eq!(binding_request_server_ufrag(&response), None);
        // Wrong cookie (an RTP packet can start with 0x00 0x01 too).
        let mut no_cookie = good.clone();
        no_cookie[4] = 0;
        assert_eq!(binding_request_server_ufrag(&no_cookie), None);
        // Declared length beyond the datagram.
        let mut long = good.clone();
        long[2..4].copy_from_slice(&0xFFFFu16.to_be_bytes());
        assert_eq!(binding_request_server_ufrag(&long), None);
        // Attribute length beyond the body.
        let mut attr_long = good.clone();
        attr_long[STUN_HEADER_LEN + 2..STUN_HEADER_LEN + 4].copy_from_slice(&[0x7F, 0xFF]);
        assert_eq!(binding_request_server_ufrag(&attr_long), None);
        // USERNAME without a colon, or with an empty server half.
        assert_eq!(
            binding_request_server_ufrag(&binding_request(b"nocolon")),
            None
        );
        assert_eq!(
            binding_request_server_ufrag(&binding_request(b":cli")),
            None
        );
        // Not UTF-8.
        assert_eq!(
            binding_request_server_ufrag(&binding_request(&[0xFF, b':', b'a'])),
            None
        );
        // Truncated at every length: never a panic, never a ufrag.
        for n in 0..good.len() {
            assert_eq!(binding_request_server_ufrag(&good[..n]), None, "prefix {n}");
        }
    }

    #[test]
    fn garbage_is_routed_nowhere() {
        let mut demux = Demux::default();
        demux.insert_ufrag("srv".into(), PeerId(1));
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift: deterministic noise without a dependency.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            assert_eq!(
                demux.route(Transport::Udp, addr(1), &bytes),
                Route::UnknownSource
            );
        }
    }

    #[test]
    fn routes_by_ufrag_then_by_learned_address() {
        let mut demux = Demux::default();
        demux.insert_ufrag("srvA".into(), PeerId(1));
        demux.insert_ufrag("srvB".into(), PeerId(2));

        let request = binding_request(b"srvB:cli");
        assert_eq!(
            demux.route(Transport::Udp, addr(5), &request),
            Route::ByUfrag(PeerId(2))
        );
        assert_eq!(
            demux.route(Transport::Udp, addr(5), &[0x80, 0x60, 0, 1]),
            Route::UnknownSource
        );

        assert!(demux.insert_addr((Transport::Udp, addr(5)), PeerId(2)));
        assert!(!demux.insert_addr((Transport::Udp, addr(5)), PeerId(2)));
        assert_eq!(
            demux.route(Transport::Udp, addr(5), &[0x80, 0x60, 0, 1]),
            Route::Known(PeerId(2))
        );

        demux.remove("srvB", &[(Transport::Udp, addr(5))]);
        assert_eq!(
            demux.route(Transport::Udp, addr(5), &request),
            Route::UnknownUfrag
        );
        assert!(!demux.has_ufrag("srvB"));
        assert!(demux.has_ufrag("srvA"));
    }

    #[test]
    fn a_tcp_connection_is_not_the_udp_socket_of_the_same_address() {
        let mut demux = Demux::default();
        demux.insert_ufrag("srv".into(), PeerId(1));
        assert!(demux.insert_addr((Transport::Tcp, addr(7)), PeerId(1)));
        assert!(demux.knows((Transport::Tcp, addr(7))));
        assert!(!demux.knows((Transport::Udp, addr(7))));
        let rtp = [0x80, 0x60, 0, 1];
        assert_eq!(
            demux.route(Transport::Tcp, addr(7), &rtp),
            Route::Known(PeerId(1))
        );
        assert_eq!(
            demux.route(Transport::Udp, addr(7), &rtp),
            Route::UnknownSource
        );
    }

    #[test]
    fn unknown_ufrag_is_reported() {
        let demux = Demux::default();
        let request = binding_request(b"nobody:cli");
        assert_eq!(
            demux.route(Transport::Udp, addr(9), &request),
            Route::UnknownUfrag
        );
    }
}
