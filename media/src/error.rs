//! One error type per operation of the core. Each variant is something the caller can act on;
//! str0m's own messages are carried as text so its types stay inside this crate.

use thiserror::Error;

use crate::PeerId;

/// [`crate::Sfu::new`] was given an unusable configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The advertised candidate address cannot be a host candidate (unspecified IP, port 0).
    #[error("cannot advertise {0} as an ICE host candidate")]
    Candidate(std::net::SocketAddr),
    /// Neither UDP nor TCP is announced: peers could not connect at all.
    #[error("no ICE candidate to advertise: enable UDP or TCP")]
    NoCandidate,
}

/// The command named a peer the core does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no media peer {0}")]
pub struct UnknownPeer(pub PeerId);

/// [`crate::Sfu::add_peer`] failed; the peer was not added.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddPeerError {
    /// A peer with this id already exists.
    #[error("media peer {0} already exists")]
    DuplicatePeer(PeerId),
    /// The offer is not parseable SDP.
    #[error("invalid SDP offer: {0}")]
    InvalidSdp(String),
    /// The offer parsed but cannot be answered (no ICE credentials, no usable codec, …).
    #[error("offer rejected: {0}")]
    OfferRejected(String),
    /// An in-process publisher named two tracks alike.
    #[error("track {0} is listed twice")]
    DuplicateTrack(crate::Mid),
}

/// [`crate::Sfu::set_video_size`] was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VideoSizeError {
    #[error(transparent)]
    UnknownPeer(#[from] UnknownPeer),
    #[error("no video m-line {0} carries media to you")]
    UnknownMid(crate::Mid),
}

/// [`crate::Sfu::write_local`] was refused; nothing was forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LocalWriteError {
    #[error("no local publisher {0}")]
    UnknownPublisher(PeerId),
    #[error("the local publisher has no track {0}")]
    UnknownTrack(crate::Mid),
}

/// [`crate::Sfu::accept_offer`] (a client renegotiation) failed; the session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AcceptOfferError {
    #[error(transparent)]
    UnknownPeer(#[from] UnknownPeer),
    /// The offer is not parseable SDP.
    #[error("invalid SDP offer: {0}")]
    InvalidSdp(String),
    /// The offer parsed but cannot be answered.
    #[error("offer rejected: {0}")]
    OfferRejected(String),
}

/// [`crate::Sfu::accept_answer`] failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AcceptAnswerError {
    #[error(transparent)]
    UnknownPeer(#[from] UnknownPeer),
    /// No SFU offer is outstanding for this peer (never made, already answered, or superseded
    /// by a client offer).
    #[error("no offer is awaiting an answer")]
    NoPendingOffer,
    /// The answer is not parseable SDP. The offer stays outstanding.
    #[error("invalid SDP answer: {0}")]
    InvalidSdp(String),
    /// The answer does not fit the offer. The offer is dropped; the SFU offers again.
    #[error("answer rejected: {0}")]
    AnswerRejected(String),
}
