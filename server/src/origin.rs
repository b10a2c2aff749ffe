//! The web origins the school's pages are served from (`http.public_origins`), and the check
//! of a WebSocket upgrade's `Origin` against them.
//!
//! Browsers send `Origin` on every WebSocket handshake and let any page open a WebSocket to
//! any host: without this check, a page elsewhere could open `/ws` from a student's browser.
//! A join token is still needed to enter a room, so the check is a second wall, not the first.
//! Clients that are not browsers (the load tester, scripts) send no `Origin` and are let in:
//! the header is a browser's promise about the page, and they have no page.

use std::fmt;

use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};

/// A web origin as browsers write it in `Origin`: `scheme://host[:port]`, lower case, the
/// default port left out. Parsed, so a value in the configuration that is not one (a path, a
/// trailing dot, a missing scheme) stops start-up instead of silently matching nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicOrigin(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a web origin: write scheme://host or scheme://host:port \
     (http or https, no path), e.g. https://school.example"
)]
pub struct NotAnOrigin(String);

impl PublicOrigin {
    pub fn parse(text: &str) -> Result<Self, NotAnOrigin> {
        let bad = || NotAnOrigin(text.to_owned());
        let lower = text.trim().to_ascii_lowercase();
        // One trailing slash is how people copy a URL; anything more is a path.
        let lower = lower.strip_suffix('/').unwrap_or(&lower);
        let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
        let default_port = match scheme {
            "http" => "80",
            "https" => "443",
            _ => return Err(bad()),
        };
        let (host, port) = split_port(rest).ok_or_else(bad)?;
        let host_ok = if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']')
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            !host.is_empty()
                && !host.starts_with('.')
                && !host.ends_with('.')
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        if !host_ok {
            return Err(bad());
        }
        Ok(PublicOrigin(match port {
            Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `host[:port]` into the host and a port of digits (without leading zeros beyond one).
fn split_port(rest: &str) -> Option<(&str, Option<&str>)> {
    let port_at = match rest.rfind(':') {
        // `[v6]` alone: its colons are not a port.
        Some(i) if !rest[i..].contains(']') => i,
        _ => return Some((rest, None)),
    };
    let (host, port) = (&rest[..port_at], &rest[port_at + 1..]);
    let port_ok = port
        .parse::<u16>()
        .is_ok_and(|n| n != 0 && n.to_string() == port);
    port_ok.then_some((host, Some(port)))
}

impl TryFrom<String> for PublicOrigin {
    type Error = NotAnOrigin;

    fn try_from(text: String) -> Result<Self, NotAnOrigin> {
        PublicOrigin::parse(&text)
    }
}

impl From<PublicOrigin> for String {
    fn from(origin: PublicOrigin) -> String {
        origin.0
    }
}

impl fmt::Debug for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The origins allowed to open the signaling WebSocket; none configured lets every origin in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<PublicOrigin>);

impl AllowedOrigins {
    pub fn new(origins: &[PublicOrigin]) -> Self {
        AllowedOrigins(origins.to_vec())
    }

    /// Whether a handshake with this `Origin` header (if any) may go on.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(origin) = origin else {
            return true;
        };
        // `null` (a sandboxed frame, a file: page) and anything unparsable name no site we
        // serve.
        let Some(origin) = origin
            .to_str()
            .ok()
            .and_then(|o| PublicOrigin::parse(o).ok())
        else {
            return false;
        };
        self.0.contains(&origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_parsed_to_the_form_browsers_send() {
        for (text, parsed) in [
            ("https://school.example", "https://school.example"),
            ("HTTPS://School.Example/", "https://school.example"),
            ("https://school.example:443", "https://school.example"),
            ("http://school.example:80", "http://school.example"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://[::1]:8443", "https://[::1]:8443"),
            ("https://[::1]", "https://[::1]"),
        ] {
            assert_eq!(
                PublicOrigin::parse(text).map(String::from),
                Ok(parsed.into()),
                "{text}"
            );
        }
        for bad in [
            "",
            "school.example",
            "ftp://school.example",
            "https://",
            "https://school.example/path",
            "https://school.example:0",
            "https://school.example:99999",
            "https://school.example:0443",
            "https://user@school.example",
            "https://school.example.",
            "https://[not-v6]",
            "https://school.example?x",
            "null",
        ] {
            assert!(PublicOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_configured_origins_or_none_at_all_may_open_the_socket() {
        let header = |v: &str| HeaderValue::from_str(v).expect("a header value");
        let allowed = AllowedOrigins::new(&[
            PublicOrigin::parse("https://school.example").expect("an origin"),
            PublicOrigin::parse("http://localhost:8080").expect("an origin"),
        ]);
        assert!(allowed.allows(Some(&header("https://school.example"))));
        assert!(allowed.allows(Some(&header("https://school.example:443"))));
        assert!(allowed.allows(Some(&header("http://localhost:8080"))));
        assert!(allowed.allows(None), "non-browser clients send no Origin");
        for refused in [
            "https://evil.example",
            "http://school.example",
            "https://school.example.evil.example",
            "https://school.example:8443",
            "http://localhost:8081",
            "null",
            "",
        ] {
            assert!(!allowed.allows(Some(&header(refused))), "{refused}");
        }
        let open = AllowedOrigins::default();
        assert!(open.allows(Some(&header("https://evil.example"))));
        assert!(open.allows(None));
    }
}
