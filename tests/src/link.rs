//! How a test media client reaches the SFU: its own UDP socket, or one TCP connection to the
//! SFU's ICE-TCP port (as a browser behind a firewall that blocks UDP would), with the
//! RFC 4571 framing written here on its own rather than taken from the server's crate.

use std::net::SocketAddr;

use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        /// Bytes read and not yet a whole frame.
        pending: Vec<u8>,
    },
}

impl Link {
    pub async fn udp() -> Link {
        Link::Udp(UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket"))
    }

    /// A TCP connection to the SFU's ICE-TCP address.
    pub async fn tcp(server: SocketAddr) -> Link {
        let stream = TcpStream::connect(server)
            .await
            .expect("the SFU accepts TCP connections");
        let _ = stream.set_nodelay(true);
        Link::Tcp {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Link::Udp(socket) => socket.local_addr().expect("bound"),
            Link::Tcp { stream, .. } => stream.local_addr().expect("connected"),
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Link::Udp(_) => Protocol::Udp,
            Link::Tcp { .. } => Protocol::Tcp,
        }
    }

    /// Sends one packet (a datagram, or a frame on the connection whatever `destination`).
    pub async fn send(&mut self, destination: SocketAddr, packet: &[u8]) {
        match self {
            Link::Udp(socket) => {
                let _ = socket.send_to(packet, destination).await;
            }
            Link::Tcp { stream, .. } => {
                let Ok(len) = u16::try_from(packet.len()) else {
                    return;
                };
                let mut frame = Vec::with_capacity(2 + packet.len());
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(packet);
                let _ = stream.write_all(&frame).await;
            }
        }
    }

    /// The packets that arrived next, with their source. Cancel-safe; never returns once a TCP
    /// connection is closed.
    pub async fn recv(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut buf = vec![0; 4096];
        match self {
            Link::Udp(socket) => match socket.recv_from(&mut buf).await {
                Ok((len, source)) => vec![(source, buf[..len].to_vec())],
                Err(_) => Vec::new(),
            },
            Link::Tcp { stream, pending } => {
                let len = match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => std::future::pending().await,
                    Ok(len) => len,
                };
                pending.extend_from_slice(&buf[..len]);
                let source = stream.peer_addr().expect("connected");
                let mut packets = Vec::new();
                while pending.len() >= 2 {
                    let frame = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
                    if pending.len() < 2 + frame {
                        break;
                    }
                    packets.push((source, pending[2..2 + frame].to_vec()));
                    pending.drain(..2 + frame);
                }
                packets
            }
        }
    }
}
