//! How a peer's packets reach the SFU: its own UDP socket, or one TCP connection to the SFU's
//! ICE-TCP port (RFC 6544: our candidate is active, the server's passive; RFC 4571 framing),
//! as a browser behind a firewall that blocks UDP would. The framing is the wire protocol's
//! ([`classroom_protocol::tcp_framing`]), the same code the server reads with.
//!
//! Neither path allocates per packet: UDP sends each datagram as str0m hands it over; TCP
//! frames the packets of one round into a reused buffer and writes it in one call.

use std::io;
use std::net::SocketAddr;

use classroom_protocol::tcp_framing::{FrameReader, frame_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// How a peer reaches the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A UDP socket and a host candidate.
    #[default]
    Udp,
    /// An active ICE-TCP candidate on a TCP connection to the passive TCP candidate the
    /// server's answer names (UDP is never tried).
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Appends `packet` with its length prefix; a packet too long to frame is dropped (as a
/// datagram over the MTU would be), which cannot happen with str0m's packet sizes.
fn frame_into(out: &mut Vec<u8>, packet: &[u8]) {
    if let Some(header) = frame_header(packet) {
        out.extend_from_slice(&header);
        out.extend_from_slice(packet);
    }
}

/// One TCP connection to the SFU's ICE-TCP port.
pub struct TcpLink {
    stream: TcpStream,
    pub local: SocketAddr,
    /// The server's passive candidate, which we connected to.
    pub remote: SocketAddr,
    pub frames: FrameReader,
    /// Frames waiting for [`TcpLink::flush`].
    out: Vec<u8>,
}

impl TcpLink {
    /// Connects from `bind_ip` to the server's passive candidate.
    pub async fn connect(bind: std::net::IpAddr, remote: SocketAddr) -> io::Result<TcpLink> {
        let socket = match remote {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(bind, 0))?;
        let stream = socket.connect(remote).await?;
        // Media must not wait for Nagle's algorithm.
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        Ok(TcpLink {
            stream,
            local,
            remote,
            frames: FrameReader::new(),
            out: Vec::with_capacity(64 * 1024),
        })
    }

    /// Queues one packet; it leaves with the next [`TcpLink::flush`].
    pub fn queue(&mut self, packet: &[u8]) {
        frame_into(&mut self.out, packet);
    }

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result
    }

    /// Reads what has arrived into [`TcpLink::frames`]; cancel-safe. `Ok(0)`: the server
    /// closed the connection.
    pub async fn read(&mut self) -> io::Result<usize> {
        let len = self.stream.read(self.frames.spare()).await?;
        self.frames.filled(len);
        Ok(len)
    }
}

/// The socket or connection a peer uses, as its task sees it.
pub enum Link {
    Udp {
        socket: UdpSocket,
        local: SocketAddr,
    },
    /// ICE-TCP, before the server's answer named its TCP candidate.
    TcpWaiting {
        bind: std::net::IpAddr,
    },
    Tcp(Box<TcpLink>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_a_real_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let server = listener.local_addr().expect("bound");
        let mut link = TcpLink::connect("127.0.0.1".parse().expect("ip"), server)
            .await
            .expect("connect");
        let (mut accepted, from) = listener.accept().await.expect("accept");
        assert_eq!(from, link.local);
        assert_eq!(link.remote, server);
        link.queue(b"hello");
        link.queue(&[1; 1200]);
        link.flush().await.expect("write");
        let mut got = vec![0; 2 + 5 + 2 + 1200];
        accepted.read_exact(&mut got).await.expect("read");
        assert_eq!(&got[..7], b"\x00\x05hello");
        assert_eq!(&got[7..9], &1200u16.to_be_bytes());
        accepted.write_all(b"\x00\x03abc\x00").await.expect("write");
        let mut frames = Vec::new();
        while frames.is_empty() {
            assert!(link.read().await.expect("read") > 0);
            while let Some(frame) = link.frames.next_frame().expect("framed") {
                frames.push(frame.to_vec());
            }
        }
        assert_eq!(frames, vec![b"abc".to_vec()]);
        drop(accepted);
        // The half frame that was left is dropped with the connection.
        assert_eq!(link.read().await.expect("eof"), 0);
    }
}
