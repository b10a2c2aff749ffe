//! What the node link's data channel carries: everything of the relay but the packets
//! (tracks, the streams that carry them, layer rates, wants, keyframe requests), one message
//! per channel message, in a small binary form of our own. Decoding takes network input: it
//! never panics, and anything it cannot read is an error the link counts and drops.

use str0m::media::{KeyframeRequestKind, Mid, Rid};

use super::NodeWant;
use crate::local::Codec;
use crate::{PeerId, TrackKind};

/// Version of this form, the first byte of every message: a node that reads another
/// version drops the message (counted) rather than misreading it.
const VERSION: u8 = 1;

/// One message on the link's data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// A publication of the sending side is forwardable.
    Track {
        publisher: PeerId,
        mid: Mid,
        kind: TrackKind,
    },
    /// It no longer is.
    TrackEnded { publisher: PeerId, mid: Mid },
    /// RTP stream `ssrc` (resent on `rtx`) carries this publication's layer `rid` in `codec`,
    /// under `link_mid` on the link.
    Stream {
        ssrc: u32,
        rtx: Option<u32>,
        link_mid: Mid,
        publisher: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        codec: Codec,
    },
    /// The rates of a simulcast publication's layers.
    Layers {
        publisher: PeerId,
        mid: Mid,
        rates: Vec<(Rid, u64)>,
    },
    /// What the sender's subscribers take of the receiver's publication.
    Want {
        publisher: PeerId,
        mid: Mid,
        want: Option<NodeWant>,
    },
    /// The sender's subscribers need a keyframe of the receiver's publication.
    Keyframe {
        publisher: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    },
    /// Nothing else to say: the link is alive (sent when the channel has been quiet).
    Alive,
    /// The sender ends the link (the other side need not wait for its timeout).
    Close,
}

/// A channel message that is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed node link message")]
pub(crate) struct Malformed;

impl Control {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Writer(vec![VERSION]);
        match self {
            Control::Track {
                publisher,
                mid,
                kind,
            } => {
                out.u8(1);
                out.track(*publisher, mid);
                out.u8(match kind {
                    TrackKind::Audio => 0,
                    TrackKind::Video => 1,
                });
            }
            Control::TrackEnded { publisher, mid } => {
                out.u8(2);
                out.track(*publisher, mid);
            }
            Control::Stream {
                ssrc,
                rtx,
                link_mid,
                publisher,
                mid,
                rid,
                codec,
            } => {
                out.u8(3);
                out.u32(*ssrc);
                out.u32(rtx.unwrap_or(0));
                out.str(link_mid);
                out.track(*publisher, mid);
                out.rid(rid.as_ref());
                let (tag, profile) = match codec {
                    Codec::Opus => (0, 0),
                    Codec::Vp8 => (1, 0),
                    Codec::Vp9 => (2, 0),
                    Codec::H264 { profile_level_id } => (3, *profile_level_id),
                    Codec::Av1 => (4, 0),
                    Codec::Other => (5, 0),
                };
                out.u8(tag);
                out.u32(profile);
            }
            Control::Layers {
                publisher,
                mid,
                rates,
            } => {
                out.u8(4);
                out.track(*publisher, mid);
                out.u8(u8::try_from(rates.len()).unwrap_or(u8::MAX));
                for (rid, rate) in rates.iter().take(usize::from(u8::MAX)) {
                    out.str(rid);
                    out.u64(*rate);
                }
            }
            Control::Want {
                publisher,
                mid,
                want,
            } => {
                out.u8(5);
                out.track(*publisher, mid);
                match want {
                    None => out.u8(0),
                    Some(NodeWant::All) => out.u8(1),
                    Some(NodeWant::Layers(rids)) => {
                        out.u8(2);
                        out.u8(u8::try_from(rids.len()).unwrap_or(u8::MAX));
                        for rid in rids.iter().take(usize::from(u8::MAX)) {
                            out.str(rid);
                        }
                    }
                }
            }
            Control::Keyframe {
                publisher,
                mid,
                rid,
                kind,
            } => {
                out.u8(6);
                out.track(*publisher, mid);
                out.rid(rid.as_ref());
                out.u8(match kind {
                    KeyframeRequestKind::Pli => 0,
                    KeyframeRequestKind::Fir => 1,
                });
            }
            Control::Alive => out.u8(7),
            Control::Close => out.u8(8),
        }
        out.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Control, Malformed> {
        let mut input = Reader(bytes);
        if input.u8()? != VERSION {
            return Err(Malformed);
        }
        let control = match input.u8()? {
            1 => {
                let (publisher, mid) = input.track()?;
                let kind = match input.u8()? {
                    0 => TrackKind::Audio,
                    1 => TrackKind::Video,
                    _ => return Err(Malformed),
                };
                Control::Track {
                    publisher,
                    mid,
                    kind,
                }
            }
            2 => {
                let (publisher, mid) = input.track()?;
                Control::TrackEnded { publisher, mid }
            }
            3 => {
                let ssrc = input.u32()?;
                let rtx = Some(input.u32()?).filter(|rtx| *rtx != 0);
                let link_mid = Mid::from(input.str()?);
                let (publisher, mid) = input.track()?;
                let rid = input.rid()?;
                let tag = input.u8()?;
                let profile = input.u32()?;
                let codec = match tag {
                    0 => Codec::Opus,
                    1 => Codec::Vp8,
                    2 => Codec::Vp9,
                    3 => Codec::H264 {
                        profile_level_id: profile,
                    },
                    4 => Codec::Av1,
                    5 => Codec::Other,
                    _ => return Err(Malformed),
                };
                Control::Stream {
                    ssrc,
                    rtx,
                    link_mid,
                    publisher,
                    mid,
                    rid,
                    codec,
                }
            }
            4 => {
                let (publisher, mid) = input.track()?;
                let count = input.u8()?;
                let mut rates = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let rid = Rid::from(input.str()?);
                    rates.push((rid, input.u64()?));
                }
                Control::Layers {
                    publisher,
                    mid,
                    rates,
                }
            }
            5 => {
                let (publisher, mid) = input.track()?;
                let want = match input.u8()? {
                    0 => None,
                    1 => Some(NodeWant::All),
                    2 => {
                        let count = input.u8()?;
                        let mut rids = Vec::with_capacity(usize::from(count));
                        for _ in 0..count {
                            rids.push(Rid::from(input.str()?));
                        }
                        Some(NodeWant::Layers(rids))
                    }
                    _ => return Err(Malformed),
                };
                Control::Want {
                    publisher,
                    mid,
                    want,
                }
            }
            6 => {
                let (publisher, mid) = input.track()?;
                let rid = input.rid()?;
                let kind = match input.u8()? {
                    0 => KeyframeRequestKind::Pli,
                    1 => KeyframeRequestKind::Fir,
                    _ => return Err(Malformed),
                };
                Control::Keyframe {
                    publisher,
                    mid,
                    rid,
                    kind,
                }
            }
            7 => Control::Alive,
            8 => Control::Close,
            _ => return Err(Malformed),
        };
        if !input.0.is_empty() {
            return Err(Malformed);
        }
        Ok(control)
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    /// Mids and rids are short (str0m keeps at most 16 bytes of them).
    fn str(&mut self, value: &str) {
        let bytes = &value.as_bytes()[..value.len().min(usize::from(u8::MAX))];
        self.u8(bytes.len() as u8);
        self.0.extend_from_slice(bytes);
    }

    fn track(&mut self, publisher: PeerId, mid: &Mid) {
        self.u64(publisher.0);
        self.str(mid);
    }

    fn rid(&mut self, rid: Option<&Rid>) {
        match rid {
            Some(rid) => {
                self.u8(1);
                self.str(rid);
            }
            None => self.u8(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < len {
            return Err(Malformed);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let bytes = self.take(4)?.try_into().map_err(|_| Malformed)?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        let bytes = self.take(8)?.try_into().map_err(|_| Malformed)?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// A mid or rid: non-empty, ASCII, as short as str0m keeps them.
    fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        if len == 0 || len > 16 || !bytes.is_ascii() {
            return Err(Malformed);
        }
        std::str::from_utf8(bytes).map_err(|_| Malformed)
    }

    fn track(&mut self) -> Result<(PeerId, Mid), Malformed> {
        let publisher = PeerId(self.u64()?);
        Ok((publisher, Mid::from(self.str()?)))
    }

    fn rid(&mut self) -> Result<Option<Rid>, Malformed> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(Rid::from(self.str()?))),
            _ => Err(Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Control> {
        let publisher = PeerId(7);
        let mid = Mid::from("1");
        vec![
            Control::Track {
                publisher,
                mid,
                kind: TrackKind::Video,
            },
            Control::TrackEnded { publisher, mid },
            Control::Stream {
                ssrc: 1234,
                rtx: Some(99),
                link_mid: Mid::from("n3"),
                publisher,
                mid,
                rid: Some(Rid::from("h")),
                codec: Codec::H264 {
                    profile_level_id: 0x42e01f,
                },
            },
            Control::Layers {
                publisher,
                mid,
                rates: vec![(Rid::from("q"), 150_000), (Rid::from("h"), 900_000)],
            },
            Control::Want {
                publisher,
                mid,
                want: Some(NodeWant::Layers(vec![Rid::from("q")])),
            },
            Control::Want {
                publisher,
                mid,
                want: None,
            },
            Control::Keyframe {
                publisher,
                mid,
                rid: None,
                kind: KeyframeRequestKind::Fir,
            },
            Control::Alive,
            Control::Close,
        ]
    }

    #[test]
    fn every_message_reads_back_as_written() {
        for control in every_kind() {
            assert_eq!(Control::decode(&control.encode()), Ok(control));
        }
    }

    #[test]
    fn truncated_extended_and_corrupted_messages_are_refused_without_a_panic() {
        for control in every_kind() {
            let bytes = control.encode();
            for len in 0..bytes.len() {
                assert_eq!(
                    Control::decode(&bytes[..len]),
                    Err(Malformed),
                    "{control:?}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Control::decode(&longer), Err(Malformed));
            // Every single-byte corruption is read or refused, never a panic.
            for at in 0..bytes.len() {
                for value in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                    let mut corrupt = bytes.clone();
                    corrupt[at] = value;
                    let _ = Control::decode(&corrupt);
                }
            }
        }
        let mut other_version = every_kind()[0].encode();
        other_version[0] = VERSION + 1;
        assert_eq!(Control::decode(&other_version), Err(Malformed));
    }
}
