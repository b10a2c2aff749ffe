//! A link's description: what one side tells the other to connect (ICE credentials, DTLS
//! fingerprint, the link socket's address as host candidate), one `key value` line each after
//! a versioned first line. Text, for the signaling between nodes to carry as it is.

use std::net::SocketAddr;

use str0m::IceCreds;
use str0m::config::Fingerprint;

use super::NodeLinkError;

/// First line of a link description.
pub(super) const DESCRIPTION_HEADER: &str = "classroom-node-link/1";

/// The other side's description, as [`NodeLink::description`] writes it.
pub(super) struct Description {
    pub(super) creds: IceCreds,
    pub(super) fingerprint: Fingerprint,
    pub(super) candidate: SocketAddr,
}

impl Description {
    pub(super) fn parse(text: &str) -> Result<Description, NodeLinkError> {
        let mut lines = text.lines();
        if lines.next() != Some(DESCRIPTION_HEADER) {
            return Err(NodeLinkError::Description("header"));
        }
        let (mut creds, mut fingerprint, mut candidate) = (None, None, None);
        for line in lines {
            match line.split_once(' ') {
                Some(("ice", rest)) => {
                    let (ufrag, pass) = rest
                        .split_once(' ')
                        .ok_or(NodeLinkError::Description("ice"))?;
                    creds = Some(IceCreds {
                        ufrag: ufrag.to_owned(),
                        pass: pass.to_owned(),
                    });
                }
                Some(("fingerprint", rest)) => {
                    fingerprint = Some(
                        rest.parse::<Fingerprint>()
                            .map_err(|_| NodeLinkError::Description("fingerprint"))?,
                    );
                }
                Some(("candidate", rest)) => {
                    candidate = Some(
                        rest.parse::<SocketAddr>()
                            .map_err(|_| NodeLinkError::Description("candidate"))?,
                    );
                }
                _ => return Err(NodeLinkError::Description("line")),
            }
        }
        Ok(Description {
            creds: creds.ok_or(NodeLinkError::Description("no ice"))?,
            fingerprint: fingerprint.ok_or(NodeLinkError::Description("no fingerprint"))?,
            candidate: candidate.ok_or(NodeLinkError::Description("no candidate"))?,
        })
    }
}
