//! How a peer's packets reach the SFU: its own UDP socket, or one TCP connection to the SFU's
//! ICE-TCP port (RFC 6544: our candidate is active, the server's passive; RFC 4571 framing),
//! as a browser behind a firewall that blocks UDP would. The framing is written here rather
//! than taken from the server's crate, so the two implementations check each other.
//!
//! Neither path allocates per packet: UDP sends each datagram as str0m hands it over; TCP
//! frames the packets of one round into a reused buffer and writes it in one call.

use std::io;
use std::net::SocketAddr;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// The largest packet sent or accepted on a TCP connection: WebRTC keeps packets under the
/// path MTU; the UDP path reads at most this much too.
pub const MAX_PACKET: usize = 2048;
/// Length prefix of each frame.
const HEADER: usize = 2;
/// Room for several frames per read.
const READ_BUFFER: usize = 8 * (HEADER + MAX_PACKET);

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

/// The TCP connection's stream broke the framing; nothing more can be read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a frame of {0} bytes is longer than any packet ({MAX_PACKET} bytes)")]
pub struct FrameTooLong(pub usize);

/// Reassembles the frames of one TCP connection in a fixed buffer and hands each out as a
/// slice of it.
pub struct Frames {
    buf: Box<[u8]>,
    /// `buf[start..end]` is read and not yet handed out.
    start: usize,
    end: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Frames {
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

impl Frames {
    /// Where the next read goes; never empty, since a frame is at most a quarter of the buffer
    /// and [`Frames::next_frame`] hands out whatever is complete.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `len` bytes were read into [`Frames::spare`].
    pub fn filled(&mut self, len: usize) {
        self.end = (self.end + len).min(self.buf.len());
    }

    /// The next complete frame, if there is one (empty frames are skipped).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameTooLong> {
        loop {
            let pending = &self.buf[self.start..self.end];
            let Some(&[high, low]) = pending.get(..HEADER) else {
                return Ok(None);
            };
            let len = usize::from(u16::from_be_bytes([high, low]));
            if len > MAX_PACKET {
                return Err(FrameTooLong(len));
            }
            if pending.len() < HEADER + len {
                return Ok(None);
            }
            let frame = self.start + HEADER..self.start + HEADER + len;
            self.start = frame.end;
            if len > 0 {
                return Ok(self.buf.get(frame));
            }
        }
    }
}

/// Appends `packet` with its length prefix; a packet too long to frame is dropped (as a
/// datagram over the MTU would be), which cannot happen with str0m's packet sizes.
pub fn frame_into(out: &mut Vec<u8>, packet: &[u8]) {
    if packet.len() > MAX_PACKET {
        return;
    }
    let Ok(len) = u16::try_from(packet.len()) else {
        return;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
}

/// One TCP connection to the SFU's ICE-TCP port.
pub struct TcpLink {
    stream: TcpStream,
    pub local: SocketAddr,
    /// The server's passive candidate, which we connected to.
    pub remote: SocketAddr,
    pub frames: Frames,
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
            frames: Frames::default(),
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

    /// Feeds `bytes` in chunks of `chunk` and collects the frames.
    fn read_all(bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameTooLong> {
        let mut frames = Frames::default();
        let mut got = Vec::new();
        for mut piece in bytes.chunks(chunk) {
            while !piece.is_empty() {
                let spare = frames.spare();
                let n = spare.len().min(piece.len());
                spare[..n].copy_from_slice(&piece[..n]);
                frames.filled(n);
                piece = &piece[n..];
                while let Some(frame) = frames.next_frame()? {
                    got.push(frame.to_vec());
                }
            }
        }
        Ok(got)
    }

    #[test]
    fn frames_come_back_whatever_the_chunking() {
        let big = vec![9u8; MAX_PACKET];
        let packets: Vec<&[u8]> = vec![b"stun", b"", b"x", &big, b"srtp", &big, &big, &big];
        let mut bytes = Vec::new();
        for packet in &packets {
            frame_into(&mut bytes, packet);
        }
        let expected: Vec<Vec<u8>> = packets
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_vec())
            .collect();
        for chunk in [1, 2, 3, 5, 1000, 2050, 4100, READ_BUFFER, bytes.len()] {
            assert_eq!(read_all(&bytes, chunk), Ok(expected.clone()), "{chunk}");
        }
    }

    #[test]
    fn a_length_no_packet_has_breaks_the_stream() {
        let mut bytes = Vec::new();
        frame_into(&mut bytes, b"fine");
        bytes.extend_from_slice(&[0x08, 0x01, 0, 0]);
        assert_eq!(read_all(&bytes, 3), Err(FrameTooLong(0x0801)));
        let mut out = Vec::new();
        frame_into(&mut out, &[0; MAX_PACKET + 1]);
        assert!(out.is_empty(), "too long to frame");
    }

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
