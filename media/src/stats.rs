//! Plain counters of the core, read with [`crate::Sfu::stats`]. The server exports them; the
//! core only counts.

/// Monotonic counters since the core was created, plus the current number of peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Peers currently in the core.
    pub peers: u64,
    /// Datagrams (and TCP frames) and their bytes handed to [`crate::Sfu::handle_datagram`]
    /// (and [`crate::Sfu::handle_tcp_frame`]).
    pub datagrams_in: u64,
    pub bytes_in: u64,
    /// Datagrams (and TCP frames) and their bytes yielded by [`crate::Sfu::poll_output`].
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// Of those, the ones on TCP connections (ICE-TCP).
    pub tcp_frames_in: u64,
    pub tcp_frames_out: u64,
    /// ICE-TCP connections (filled in by the driver, which owns them): open now, accepted,
    /// refused at the connection limit, closed for breaking the rules (garbage, an absurd
    /// frame length, no valid STUN request in time, evicted by a flood).
    pub tcp_connections_open: u64,
    pub tcp_connections_accepted: u64,
    pub tcp_connections_refused: u64,
    pub tcp_connections_closed_hostile: u64,
    /// Frames not sent because a TCP connection's queue was full.
    pub tcp_frames_dropped: u64,
    /// Dropped: not STUN, from an address no peer owns.
    pub dropped_unknown_source: u64,
    /// Dropped: a STUN binding request for a ufrag no peer owns.
    pub dropped_unknown_ufrag: u64,
    /// Dropped: a STUN binding request for a known ufrag that failed its integrity check.
    pub dropped_stun_rejected: u64,
    /// Dropped: from a known peer but not STUN, DTLS, RTP or RTCP.
    pub dropped_malformed: u64,
    /// Datagrams a peer's `Rtc` refused with an error (bad DTLS record, …).
    pub input_errors: u64,
    /// RTP packets received from publishers.
    pub rtp_packets_in: u64,
    /// RTP packets written to subscribers (one per copy).
    pub rtp_packets_forwarded: u64,
    /// RTP packets not forwarded because the publisher may not publish.
    pub rtp_dropped_unpublished: u64,
    /// Audio packets not forwarded because a moderator muted the publisher.
    pub rtp_dropped_muted: u64,
    /// RTP copies not forwarded because the subscriber has no matching codec.
    pub rtp_dropped_no_codec: u64,
    /// Video packets not forwarded to a new subscriber before its first keyframe.
    pub rtp_dropped_awaiting_keyframe: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests_sent: u64,
    /// Requests that came inside the throttle interval and went out at its end.
    pub keyframe_requests_deferred: u64,
    /// Requests merged into one already deferred (a burst of joiners costs one keyframe).
    pub keyframe_requests_merged: u64,
    /// NACKs (RTCP generic NACK messages) subscribers sent us, and the RTP packets resent to
    /// them from the retransmission buffers in answer (packets no longer buffered are not).
    pub nacks_received: u64,
    pub rtp_retransmitted: u64,
    /// NACKs we sent publishers for packets lost on their way to us.
    pub nacks_sent: u64,
    /// Keyframe requests subscribers sent us (before the throttle): PLIs and FIRs.
    pub plis_received: u64,
    pub firs_received: u64,
    /// Simulcast slots that moved to another layer (on its keyframe).
    pub layer_switches: u64,
    /// Simulcast packets of a layer the slot does not take (counted once per packet and slot).
    pub rtp_skipped_layer: u64,
    /// Subscribers' bandwidth estimates restarted higher, at what their floor (audio and the
    /// lowest layer of each video) needs.
    pub estimate_starts_raised: u64,
}
