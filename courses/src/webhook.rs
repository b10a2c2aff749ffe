//! Webhooks: a school's or a course's URL the server POSTs signed JSON events to
//! (`lesson.started`, `lesson.ended` with the attendance summary, `replay.ready`), so that a
//! school's LMS or script can act on them. See docs/webhooks.md for what a receiver checks.
//!
//! Each event is stored once per webhook with its body (`webhook_deliveries`, unique per
//! webhook and event id) and sent by the job queue's workers, retried with backoff. The URL
//! passes the same outbound policy as restream destinations, when it is added and again at
//! every attempt (the name may resolve elsewhere by then).

use std::net::SocketAddr;
use std::time::Duration;

use classroom_protocol::CourseId;
use classroom_protocol::outbound::{NoAllowedAddress, OutboundPolicy};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::restream::DestinationRefused;

/// The signature header: `sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Classroom-Signature";
/// The timestamp header (Unix seconds), part of what is signed so a receiver can refuse
/// replays of an old delivery.
pub const TIMESTAMP_HEADER: &str = "X-Classroom-Timestamp";
/// The event id header, the same as the body's `id`.
pub const EVENT_HEADER: &str = "X-Classroom-Event-Id";
/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 512;
/// The most webhooks a school, or one course, may have.
pub const MAX_WEBHOOKS: i64 = 20;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A stored webhook (its secret is kept sealed and never shown again after creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// The course it is for; `null` for the whole school.
    pub course_id: Option<CourseId>,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A webhook with its secret, as the sender needs it.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: WebhookUrl,
    pub secret: String,
}

/// One event to send to one webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub body: String,
    pub target: WebhookTarget,
}

/// A checked `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: String,
    tls: bool,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    host: String,
    port: u16,
    /// The path and query, `/` when empty (the fragment is not sent).
    target: String,
}

/// Why a URL is not a webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadWebhookUrl(pub &'static str);

impl WebhookUrl {
    pub fn parse(url: &str) -> Result<Self, BadWebhookUrl> {
        if url.len() > MAX_URL_LEN {
            return Err(BadWebhookUrl("the URL is longer than 512 characters"));
        }
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BadWebhookUrl(
                "the URL must be printable ASCII without spaces",
            ));
        }
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(BadWebhookUrl("the URL must start with http:// or https://"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(BadWebhookUrl(
                "the URL must not carry a user name or password",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or(BadWebhookUrl("the URL's IPv6 address has no closing ]"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(BadWebhookUrl("the URL has no valid host"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(BadWebhookUrl(
                    "the URL's port is not a number from 1 to 65535",
                ))?,
        };
        let target = rest[authority.len()..]
            .split('#')
            .next()
            .unwrap_or_default();
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        Ok(WebhookUrl {
            url: url.to_owned(),
            tls,
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            target,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `https://`: the connection is TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// `host[:port]`, for the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target: path and query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Checks a host given as an address against `policy` without any lookup; a name is
    /// checked at each delivery, when it is resolved (creating a webhook never sends a DNS
    /// query, and the name may resolve elsewhere by delivery time anyway).
    pub fn check_literal(&self, policy: &OutboundPolicy) -> Result<(), DestinationRefused> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = host.parse::<std::net::IpAddr>() else {
            return Ok(());
        };
        match policy.filter([SocketAddr::new(ip, self.port)]) {
            Ok(_) => Ok(()),
            Err(NoAllowedAddress::NoAddress) => Err(DestinationRefused::Unresolvable {
                host: self.host.clone(),
            }),
            Err(NoAllowedAddress::Refused(refused)) => Err(DestinationRefused::NotAllowed {
                host: self.host.clone(),
                kind: refused.kind,
            }),
        }
    }

    /// Resolves the host and keeps the addresses `policy` allows (the sender connects only
    /// to those); refused when there is none.
    pub async fn allowed_addresses(
        &self,
        policy: &OutboundPolicy,
    ) -> Result<Vec<SocketAddr>, DestinationRefused> {
        let unresolvable = || DestinationRefused::Unresolvable {
            host: self.host.clone(),
        };
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let resolved = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addresses)) => addresses,
            _ => return Err(unresolvable()),
        };
        match policy.filter(resolved) {
            Ok(allowed) => Ok(allowed),
            Err(NoAllowedAddress::NoAddress) => Err(unresolvable()),
            Err(NoAllowedAddress::Refused(refused)) => Err(DestinationRefused::NotAllowed {
                host: self.host.clone(),
                kind: refused.kind,
            }),
        }
    }
}

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The JSON body of an event: `{"id", "type", "created_at", "data"}`.
pub fn event_body(
    event_id: &str,
    kind: &str,
    at: OffsetDateTime,
    data: serde_json::Value,
) -> String {
    let created_at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "id": event_id,
        "type": kind,
        "created_at": created_at,
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = WebhookUrl::parse("https://lms.example.org/hooks/classroom?x=1")
            .expect("a webhook URL");
        assert_eq!((url.host(), url.port), ("lms.example.org", 443));
        assert_eq!(url.target(), "/hooks/classroom?x=1");
        assert!(url.tls());
        let url = WebhookUrl::parse("http://127.0.0.1:8080/in").expect("a webhook URL");
        assert_eq!((url.host(), url.port), ("127.0.0.1", 8080));
        assert_eq!((url.authority(), url.target()), ("127.0.0.1:8080", "/in"));
        let url = WebhookUrl::parse("http://h?q#frag").expect("a webhook URL");
        assert_eq!((url.authority(), url.target()), ("h", "/?q"));
        let url = WebhookUrl::parse("http://[::1]:81/").expect("a webhook URL");
        assert_eq!((url.host(), url.port), ("::1", 81));
        for bad in [
            "ftp://x/",
            "http://",
            "http://user:pw@host/",
            "http://host:0/",
            "http://host:99999/",
            "http://ho st/",
            "http://[::1/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(WebhookUrl::parse(&format!("http://h/{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        // Computed with Python's hmac module, as a receiver would check it.
        let a = sign(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            a,
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        let b = sign(b"secret", 1_700_000_001, b"{}");
        let c = sign(b"other", 1_700_000_000, b"{}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, sign(b"secret", 1_700_000_000, b"{}"));
    }
}
