//! Opening a destination's TCP connection, within the server's outbound policy.
//!
//! The host is resolved once per attempt; the addresses the [`OutboundPolicy`] refuses are
//! dropped and only the remaining ones are connected to, by address, so a name whose DNS
//! answer changes between the check and the connect cannot reach a private address (DNS
//! rebinding). The check made when the destination was added is not trusted here: DNS
//! changes.
//!
//! What the teacher is told does not tell a refused port from a silent one ("could not
//! connect"), so the restream cannot be used to map which ports answer; the log keeps the
//! detail for the operator.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use classroom_protocol::outbound::{NoAllowedAddress, OutboundPolicy};
use tokio::net::TcpStream;

use super::tls::PushTls;

/// Resolving and connecting (every allowed address in turn) must take no longer than this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How destinations are reached: the TLS settings for `rtmps://` and the outbound policy.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub tls: PushTls,
    pub outbound: Arc<OutboundPolicy>,
}

/// Why a destination's TCP connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("resolving the host failed: {0}")]
    Unresolved(io::Error),
    #[error("no allowed address: {0}")]
    NotAllowed(NoAllowedAddress),
    /// Every allowed address refused, was unreachable or did not answer; the last error.
    #[error("connecting failed: {0}")]
    Unreachable(io::Error),
    #[error("resolving and connecting took longer than 5 s")]
    TimedOut,
}

impl DialError {
    /// What the teacher sees. Refused, unreachable and timed out read the same.
    pub fn reason(&self, host: &str, port: u16) -> String {
        match self {
            DialError::Unresolved(_) => format!("could not find the address of {host}"),
            DialError::NotAllowed(NoAllowedAddress::NoAddress) => {
                format!("could not find the address of {host}")
            }
            DialError::NotAllowed(NoAllowedAddress::Refused(refused)) => format!(
                "not allowed: {host} is {}; this server restreams to public addresses only \
                 (an operator can allow networks with restream.allowed_networks)",
                refused.kind
            ),
            DialError::Unreachable(_) | DialError::TimedOut => {
                format!("could not connect to {host}:{port}")
            }
        }
    }
}

impl Dialer {
    /// A TCP connection to `host:port`, at an address the policy allows.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, DialError> {
        tokio::time::timeout(DIAL_TIMEOUT, self.resolve_and_connect(host, port))
            .await
            .unwrap_or(Err(DialError::TimedOut))
    }

    async fn resolve_and_connect(&self, host: &str, port: u16) -> Result<TcpStream, DialError> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(DialError::Unresolved)?
            .collect();
        let allowed = self
            .outbound
            .filter(resolved)
            .map_err(DialError::NotAllowed)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in allowed {
            match TcpStream::connect(addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = e,
            }
        }
        Err(DialError::Unreachable(last))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use classroom_protocol::outbound::{Refused, Restricted};

    use super::*;

    fn dialer(allowed: &[&str]) -> Dialer {
        Dialer {
            tls: PushTls::new(None).expect("Mozilla's roots"),
            outbound: Arc::new(OutboundPolicy::new(allowed).expect("valid networks")),
        }
    }

    #[test]
    fn a_refused_port_and_a_silent_one_read_the_same() {
        let refused = DialError::Unreachable(io::ErrorKind::ConnectionRefused.into());
        let unreachable = DialError::Unreachable(io::ErrorKind::HostUnreachable.into());
        let reasons = [refused, unreachable, DialError::TimedOut].map(|e| e.reason("h", 1935));
        assert_eq!(
            reasons,
            ["could not connect to h:1935"; 3].map(String::from)
        );
        let not_allowed = DialError::NotAllowed(NoAllowedAddress::Refused(Refused {
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            kind: Restricted::Private,
        }));
        let reason = not_allowed.reason("intranet", 1935);
        assert!(reason.contains("private network address"), "{reason}");
        assert!(
            !reason.contains("10.0.0.1"),
            "the address stays in the log: {reason}"
        );
    }

    #[tokio::test]
    async fn a_restricted_address_is_refused_before_any_connection() {
        // A listener on loopback: were the policy skipped, the dial would reach it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener");
        let port = listener.local_addr().expect("bound").port();
        for host in ["127.0.0.1", "localhost", "::ffff:127.0.0.1"] {
            let error = dialer(&[])
                .connect(host, port)
                .await
                .expect_err("loopback is refused");
            assert!(
                matches!(
                    &error,
                    DialError::NotAllowed(NoAllowedAddress::Refused(Refused {
                        kind: Restricted::Loopback,
                        ..
                    }))
                ),
                "{host}: {error:?}"
            );
        }
        let nothing = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(nothing.is_err(), "no connection reached the listener");

        // Allowed by the operator, the same address connects.
        let tcp = dialer(&["127.0.0.0/8"]).connect("127.0.0.1", port).await;
        assert!(tcp.is_ok(), "{tcp:?}");
    }

    #[tokio::test]
    async fn a_closed_port_could_not_be_connected_to() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("bound").port()
        };
        let error = dialer(&["127.0.0.0/8"])
            .connect("127.0.0.1", port)
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, DialError::Unreachable(_)), "{error:?}");
        assert_eq!(
            error.reason("127.0.0.1", port),
            format!("could not connect to 127.0.0.1:{port}")
        );
    }
}
