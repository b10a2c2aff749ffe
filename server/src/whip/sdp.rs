//! The little WHIP and WHEP need to know of an SDP offer before the SFU parses it: that it is
//! SDP at all, which kinds of media it sends or wants, the mids of what it sends, and its ICE
//! username fragment (to tell a trickle PATCH from an ICE restart). The SFU's WebRTC engine
//! parses the offer in full; this only lets the HTTP side refuse what cannot be a publisher's
//! (or a player's) offer with a clear message, before anything changes.

/// Media the offer sends or receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSummary {
    /// The mids of the m-sections that send (`sendonly` or `sendrecv`), with their kind.
    pub sending: Vec<(String, MediaKind)>,
    /// The kinds of the m-sections that receive (`recvonly` or `sendrecv`).
    pub receiving: Vec<MediaKind>,
    /// The session's ICE username fragment (session level, or the first m-section's).
    pub ice_ufrag: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// Why a body is not an offer we can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the body is not an SDP offer (it must start with `v=0`)")]
    NotSdp,
    #[error("the offer has no audio or video m-section")]
    NoMedia,
    #[error("an m-section without a mid (`a=mid:`) cannot be bundled; offer one per m-line")]
    MissingMid,
}

impl OfferSummary {
    pub fn sends(&self, kind: MediaKind) -> bool {
        self.sending.iter().any(|(_, k)| *k == kind)
    }

    pub fn receives(&self, kind: MediaKind) -> bool {
        self.receiving.contains(&kind)
    }
}

/// Reads what WHIP and WHEP check of an offer.
pub fn summarize(offer: &str) -> Result<OfferSummary, OfferError> {
    let mut lines = offer.lines().map(str::trim_end);
    if lines.next() != Some("v=0") {
        return Err(OfferError::NotSdp);
    }
    let mut summary = OfferSummary {
        sending: Vec::new(),
        receiving: Vec::new(),
        ice_ufrag: None,
    };
    let mut section: Option<Section> = None;
    let mut any_media = false;
    for line in lines {
        if let Some(media) = line.strip_prefix("m=") {
            if let Some(done) = section.take() {
                done.close(&mut summary)?;
            }
            let kind = match media.split(' ').next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                // Data channels and anything else: neither sent nor received media.
                _ => None,
            };
            any_media |= kind.is_some();
            section = Some(Section {
                kind,
                mid: None,
                direction: Direction::SendRecv,
            });
        } else if let Some(ufrag) = line.strip_prefix("a=ice-ufrag:") {
            summary.ice_ufrag.get_or_insert_with(|| ufrag.to_owned());
        } else if let Some(current) = section.as_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                current.mid = Some(mid.to_owned());
            } else if let Some(direction) = line.strip_prefix("a=").and_then(Direction::parse) {
                current.direction = direction;
            }
        }
    }
    if let Some(done) = section.take() {
        done.close(&mut summary)?;
    }
    if !any_media {
        return Err(OfferError::NoMedia);
    }
    Ok(summary)
}

/// The ICE username fragment of a trickle PATCH body (`application/trickle-ice-sdpfrag`).
pub fn fragment_ufrag(fragment: &str) -> Option<&str> {
    fragment
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

struct Section {
    kind: Option<MediaKind>,
    mid: Option<String>,
    direction: Direction,
}

#[derive(Clone, Copy)]
enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(attribute: &str) -> Option<Self> {
        match attribute {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl Section {
    fn close(self, summary: &mut OfferSummary) -> Result<(), OfferError> {
        let Some(kind) = self.kind else {
            return Ok(());
        };
        if matches!(self.direction, Direction::SendRecv | Direction::SendOnly) {
            let mid = self.mid.ok_or(OfferError::MissingMid)?;
            summary.sending.push((mid, kind));
        }
        if matches!(self.direction, Direction::SendRecv | Direction::RecvOnly) {
            summary.receiving.push(kind);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=mid:0\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=mid:1\r\na=sendonly\r\n";

    #[test]
    fn a_publishers_offer_sends_its_mids() {
        let summary = summarize(PUBLISHER).expect("an offer");
        assert_eq!(
            summary.sending,
            [
                ("0".into(), MediaKind::Audio),
                ("1".into(), MediaKind::Video)
            ]
        );
        assert!(summary.receiving.is_empty());
        assert_eq!(summary.ice_ufrag.as_deref(), Some("abcd"));
    }

    #[test]
    fn a_players_offer_receives() {
        let player = PUBLISHER.replace("a=sendonly", "a=recvonly");
        let summary = summarize(&player).expect("an offer");
        assert!(summary.sending.is_empty());
        assert!(summary.receives(MediaKind::Video) && summary.receives(MediaKind::Audio));
    }

    #[test]
    fn what_is_not_an_offer_is_refused() {
        assert_eq!(summarize("hello"), Err(OfferError::NotSdp));
        assert_eq!(summarize(""), Err(OfferError::NotSdp));
        let data_only = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n";
        assert_eq!(summarize(data_only), Err(OfferError::NoMedia));
        let no_mid = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n";
        assert_eq!(summarize(no_mid), Err(OfferError::MissingMid));
    }

    #[test]
    fn a_fragment_names_its_ufrag() {
        let fragment =
            "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\n";
        assert_eq!(fragment_ufrag(fragment), Some("EsAw"));
        assert_eq!(fragment_ufrag("a=end-of-candidates\r\n"), None);
    }
}
