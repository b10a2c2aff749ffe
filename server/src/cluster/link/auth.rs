//! How a home node knows that a link comes from a node of its cluster: the edge signs, with
//! the cluster's shared secret (`cluster.secret`), who it is, which node it calls and until
//! when the signature holds; the home checks the signature (HMAC-SHA256, compared in constant
//! time), that it names this node, and that it has not expired. The credential travels in the
//! link's upgrade request (`Authorization: ClassroomNode <from>.<expires_ms>.<hex>`), so a
//! wrong one is refused before anything of the link exists.
//!
//! A credential holds [`VALIDITY`]: long enough for a connect across a loaded machine, short
//! enough that one seen on a plain-HTTP private network is soon worthless (with `https://`
//! node URLs nobody sees it). It names the home, so it opens no link to another node.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::cluster::registry::NodeId;

/// How long a link credential holds after it is made.
pub const VALIDITY: Duration = Duration::from_secs(30);
/// The authorization scheme of a link's upgrade request.
pub const SCHEME: &str = "ClassroomNode";

/// The cluster's shared secret; never printed.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<set>)")
    }
}

/// Why a link's credential was refused (for the home's log; the edge hears only "refused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkAuthError {
    #[error("no `{SCHEME}` credential")]
    Missing,
    #[error("a credential that does not parse")]
    Malformed,
    #[error("a credential for another node")]
    OtherNode,
    #[error("an expired credential (or one from a clock far ahead)")]
    Expired,
    #[error("a wrong signature: the nodes do not share cluster.secret")]
    BadSignature,
}

impl ClusterSecret {
    pub fn new(secret: &str) -> ClusterSecret {
        ClusterSecret(secret.as_bytes().to_vec())
    }

    fn mac(&self, from: &NodeId, to: &NodeId, expires_ms: u64) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC accepts keys of any length")
        };
        // Lengths first: no two (from, to) pairs write the same bytes.
        mac.update(b"classroom node link v1\n");
        for part in [from.0.as_bytes(), to.0.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&expires_ms.to_be_bytes());
        mac
    }

    /// The `Authorization` value of a link from `from` to `to`, made at `now_ms` (Unix).
    pub fn credential(&self, from: &NodeId, to: &NodeId, now_ms: u64) -> String {
        let expires_ms = now_ms + VALIDITY.as_millis() as u64;
        let tag = self.mac(from, to, expires_ms).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{SCHEME} {}.{expires_ms}.{hex}", from.0)
    }

    /// The node a link's `Authorization` value (`header`) comes from, if it is a credential
    /// for this node (`this`) that holds at `now_ms`.
    pub fn verify(
        &self,
        header: Option<&str>,
        this: &NodeId,
        now_ms: u64,
    ) -> Result<NodeId, LinkAuthError> {
        let value = header
            .and_then(|h| h.strip_prefix(SCHEME))
            .and_then(|h| h.strip_prefix(' '))
            .ok_or(LinkAuthError::Missing)?;
        // Node ids may hold dots; the expiry and the signature do not.
        let mut parts = value.rsplitn(3, '.');
        let (Some(hex), Some(expires), Some(from)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkAuthError::Malformed);
        };
        let expires_ms: u64 = expires.parse().map_err(|_| LinkAuthError::Malformed)?;
        let tag = decode_hex(hex).ok_or(LinkAuthError::Malformed)?;
        let from = NodeId(from.to_owned());
        // The signature first, so that what follows is known to come from a node.
        self.mac(&from, this, expires_ms)
            .verify_slice(&tag)
            .map_err(|_| LinkAuthError::BadSignature)?;
        let latest = now_ms + 2 * VALIDITY.as_millis() as u64;
        if expires_ms <= now_ms || expires_ms > latest {
            return Err(LinkAuthError::Expired);
        }
        Ok(from)
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 128 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId(id.to_owned())
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_credential_made_with_the_shared_secret_opens_a_link_to_the_node_it_names() {
        let secret = ClusterSecret::new("the cluster's secret, thirty-two bytes or more");
        let credential = secret.credential(&node("edge.1"), &node("home"), NOW);
        assert!(
            credential.starts_with("ClassroomNode edge.1."),
            "{credential}"
        );
        let from = secret.verify(Some(&credential), &node("home"), NOW + 1_000);
        assert_eq!(from, Ok(node("edge.1")));
    }

    #[test]
    fn a_wrong_secret_another_node_or_an_old_credential_is_refused() {
        let secret = ClusterSecret::new("the cluster's secret, thirty-two bytes or more");
        let other = ClusterSecret::new("another cluster's secret, also thirty-two bytes");
        let home = node("home");
        let credential = other.credential(&node("edge"), &home, NOW);
        assert_eq!(
            secret.verify(Some(&credential), &home, NOW),
            Err(LinkAuthError::BadSignature)
        );
        let credential = secret.credential(&node("edge"), &node("home2"), NOW);
        assert_eq!(
            secret.verify(Some(&credential), &home, NOW),
            Err(LinkAuthError::BadSignature)
        );
        let credential = secret.credential(&node("edge"), &home, NOW);
        let expired = NOW + VALIDITY.as_millis() as u64;
        assert_eq!(
            secret.verify(Some(&credential), &home, expired),
            Err(LinkAuthError::Expired)
        );
        // Signed far ahead of this node's clock.
        let credential = secret.credential(&node("edge"), &home, NOW + 120_000);
        assert_eq!(
            secret.verify(Some(&credential), &home, NOW),
            Err(LinkAuthError::Expired)
        );
        // Tampered: the edge claims another name with the same signature.
        let credential = secret.credential(&node("edge"), &home, NOW);
        let forged = credential.replacen("edge", "edgf", 1);
        assert_eq!(
            secret.verify(Some(&forged), &home, NOW),
            Err(LinkAuthError::BadSignature)
        );
        for bad in [
            "",
            "Bearer x",
            "ClassroomNode",
            "ClassroomNode a.b",
            "ClassroomNode a.1.zz",
        ] {
            assert!(secret.verify(Some(bad), &home, NOW).is_err(), "{bad}");
        }
        assert_eq!(secret.verify(None, &home, NOW), Err(LinkAuthError::Missing));
    }
}
