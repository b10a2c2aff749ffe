//! Plain counters of the core, read with [`crate::Sfu::stats`]. The server exports them; the
//! core only counts.
//!
//! Each counter is declared once, with the metric series it is exported as (a [`Family`] and
//! its label value), by [`sfu_stats!`]: the struct and [`SfuStats::metrics`] come from that
//! one list, so a new counter cannot be left out of the export.

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// A metric (one Prometheus family) that counters of [`SfuStats`] are exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// The label that tells the family's series apart, if it has several.
    pub label: Option<&'static str>,
}

/// One counter's value, as the series it is exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub family: &'static Family,
    /// The value of the family's label for this counter.
    pub label: Option<&'static str>,
    /// The [`SfuStats`] field it comes from.
    pub field: &'static str,
    pub value: u64,
}

const fn family(
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    label: Option<&'static str>,
) -> Family {
    Family {
        name,
        help,
        kind,
        label,
    }
}

pub const PEERS: Family = family(
    "classroom_media_peers",
    "WebRTC peers in the SFU",
    MetricKind::Gauge,
    None,
);
pub const DATAGRAMS: Family = family(
    "classroom_media_datagrams_total",
    "UDP datagrams of the SFU",
    MetricKind::Counter,
    Some("direction"),
);
pub const BYTES: Family = family(
    "classroom_media_bytes_total",
    "UDP bytes of the SFU",
    MetricKind::Counter,
    Some("direction"),
);
pub const RTP_PACKETS: Family = family(
    "classroom_media_rtp_packets_total",
    "RTP packets received from publishers and copies forwarded to subscribers",
    MetricKind::Counter,
    Some("what"),
);
pub const DROPPED: Family = family(
    "classroom_media_dropped_total",
    "Datagrams and packets the SFU dropped, by reason",
    MetricKind::Counter,
    Some("reason"),
);
pub const KEYFRAME_REQUESTS: Family = family(
    "classroom_media_keyframe_requests_total",
    "Keyframe requests to publishers: sent, deferred to the end of the throttle interval, or \
     merged into one deferred already",
    MetricKind::Counter,
    Some("outcome"),
);
pub const FIRST_FRAMES: Family = family(
    "classroom_media_first_frames_total",
    "New subscribers' first video: started from the publication's cached keyframe, or on a \
     keyframe the publisher sent after it",
    MetricKind::Counter,
    Some("from"),
);
pub const SIMULCAST: Family = family(
    "classroom_media_simulcast_total",
    "Simulcast: layer switches of subscribers' slots, packets of layers a slot did not take, \
     and subscribers' bandwidth estimates restarted at what their lowest layers and audio need",
    MetricKind::Counter,
    Some("event"),
);
pub const NACKS: Family = family(
    "classroom_media_nacks_total",
    "RTCP NACKs: received from subscribers, sent to publishers",
    MetricKind::Counter,
    Some("direction"),
);
pub const RETRANSMITTED: Family = family(
    "classroom_media_retransmitted_packets_total",
    "RTP packets resent to subscribers in answer to their NACKs",
    MetricKind::Counter,
    None,
);
pub const SUBSCRIBER_KEYFRAME_REQUESTS: Family = family(
    "classroom_media_subscriber_keyframe_requests_total",
    "Keyframe requests subscribers sent, before the throttle",
    MetricKind::Counter,
    Some("kind"),
);
pub const TCP_CONNECTIONS_OPEN: Family = family(
    "classroom_media_tcp_connections",
    "ICE-TCP connections open to the SFU",
    MetricKind::Gauge,
    None,
);
pub const TCP_CONNECTIONS: Family = family(
    "classroom_media_tcp_connections_total",
    "ICE-TCP connections: accepted, refused at the limit, closed for breaking the rules \
     (garbage, absurd frame length, no valid STUN in time, flood)",
    MetricKind::Counter,
    Some("outcome"),
);
pub const TCP_FRAMES: Family = family(
    "classroom_media_tcp_frames_total",
    "ICE-TCP frames (one packet each) in, out, and dropped on a full connection",
    MetricKind::Counter,
    Some("direction"),
);

/// Declares [`SfuStats`]: each field with its doc and the series it is exported as
/// (`field => FAMILY` or `field => FAMILY["label value"]`).
macro_rules! sfu_stats {
    ($( $(#[$doc:meta])* $field:ident => $family:ident $([$label:literal])?, )*) => {
        /// Monotonic counters since the core was created, plus the current number of peers
        /// (and of ICE-TCP connections).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct SfuStats {
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl SfuStats {
            /// Every counter as the metric series it is exported as, in declaration order.
            pub fn metrics(&self) -> impl Iterator<Item = Metric> + use<> {
                [$(
                    Metric {
                        family: &$family,
                        label: sfu_stats!(@label $($label)?),
                        field: stringify!($field),
                        value: self.$field,
                    },
                )*]
                .into_iter()
            }

            /// Adds `other`'s counters to these (the workers' stats to the server's total;
            /// gauges add up too: peers and connections in all workers).
            pub fn add(&mut self, other: &SfuStats) {
                $( self.$field = self.$field.saturating_add(other.$field); )*
            }

            /// Stats whose fields are 1, 2, 3, … in declaration order: for tests that follow
            /// each field to where it is exported.
            #[doc(hidden)]
            pub fn numbered() -> Self {
                let mut n = 0;
                let mut next = || {
                    n += 1;
                    n
                };
                SfuStats { $( $field: next(), )* }
            }
        }
    };
    (@label) => { None };
    (@label $label:literal) => { Some($label) };
}

sfu_stats! {
    /// Peers currently in the core.
    peers => PEERS,
    /// Datagrams (and TCP frames) and their bytes handed to [`crate::Sfu::handle_datagram`]
    /// (and [`crate::Sfu::handle_tcp_frame`]).
    datagrams_in => DATAGRAMS["in"],
    bytes_in => BYTES["in"],
    /// Datagrams (and TCP frames) and their bytes yielded by [`crate::Sfu::poll_output`].
    datagrams_out => DATAGRAMS["out"],
    bytes_out => BYTES["out"],
    /// Of those, the ones on TCP connections (ICE-TCP).
    tcp_frames_in => TCP_FRAMES["in"],
    tcp_frames_out => TCP_FRAMES["out"],
    /// ICE-TCP connections (filled in by the driver, which owns them): open now, accepted,
    /// refused at the connection limit, closed for breaking the rules (garbage, an absurd
    /// frame length, no valid STUN request in time, evicted by a flood).
    tcp_connections_open => TCP_CONNECTIONS_OPEN,
    tcp_connections_accepted => TCP_CONNECTIONS["accepted"],
    tcp_connections_refused => TCP_CONNECTIONS["refused"],
    tcp_connections_closed_hostile => TCP_CONNECTIONS["closed_hostile"],
    /// Frames not sent because a TCP connection's queue was full.
    tcp_frames_dropped => TCP_FRAMES["dropped"],
    /// Dropped: not STUN, from an address no peer owns.
    dropped_unknown_source => DROPPED["unknown_source"],
    /// Dropped: a STUN binding request for a ufrag no peer owns.
    dropped_unknown_ufrag => DROPPED["unknown_ufrag"],
    /// Dropped: a STUN binding request for a known ufrag that failed its integrity check.
    dropped_stun_rejected => DROPPED["stun_rejected"],
    /// Dropped: from a known peer but not STUN, DTLS, RTP or RTCP.
    dropped_malformed => DROPPED["malformed"],
    /// Datagrams a peer's `Rtc` refused with an error (bad DTLS record, …).
    input_errors => DROPPED["input_error"],
    /// RTP packets received from publishers.
    rtp_packets_in => RTP_PACKETS["received"],
    /// RTP packets written to subscribers (one per copy).
    rtp_packets_forwarded => RTP_PACKETS["forwarded"],
    /// RTP packets not forwarded because the publisher may not publish.
    rtp_dropped_unpublished => DROPPED["not_granted"],
    /// Audio packets not forwarded because a moderator muted the publisher.
    rtp_dropped_muted => DROPPED["muted"],
    /// RTP copies not forwarded because the subscriber has no matching codec.
    rtp_dropped_no_codec => DROPPED["no_codec"],
    /// Video packets not forwarded to a new subscriber before its first keyframe.
    rtp_dropped_awaiting_keyframe => DROPPED["awaiting_keyframe"],
    /// Keyframe requests sent to publishers.
    keyframe_requests_sent => KEYFRAME_REQUESTS["sent"],
    /// Requests that came inside the throttle interval and went out at its end.
    keyframe_requests_deferred => KEYFRAME_REQUESTS["deferred"],
    /// Requests merged into one already deferred (a burst of joiners costs one keyframe).
    keyframe_requests_merged => KEYFRAME_REQUESTS["merged"],
    /// NACKs (RTCP generic NACK messages) subscribers sent us, and the RTP packets resent to
    /// them from the retransmission buffers in answer (packets no longer buffered are not).
    nacks_received => NACKS["received"],
    rtp_retransmitted => RETRANSMITTED,
    /// NACKs we sent publishers for packets lost on their way to us.
    nacks_sent => NACKS["sent"],
    /// Keyframe requests subscribers sent us (before the throttle): PLIs and FIRs.
    plis_received => SUBSCRIBER_KEYFRAME_REQUESTS["pli"],
    firs_received => SUBSCRIBER_KEYFRAME_REQUESTS["fir"],
    /// Simulcast slots that moved to another layer (on its keyframe).
    layer_switches => SIMULCAST["layer_switch"],
    /// Simulcast packets of a layer the slot does not take (counted once per packet and slot).
    rtp_skipped_layer => SIMULCAST["layer_skipped"],
    /// Subscribers' bandwidth estimates restarted higher, at what their floor (audio and the
    /// lowest layer of each video) needs.
    estimate_starts_raised => SIMULCAST["estimate_raised"],
    /// Video slots that started on the publication's (or layer's) cached keyframe.
    first_frames_from_cache => FIRST_FRAMES["cache"],
    /// Video slots that started on a keyframe the publisher sent since they were bound.
    first_frames_from_publisher => FIRST_FRAMES["publisher"],
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn numbered_stats_give_each_field_its_own_value() {
        let values: Vec<u64> = SfuStats::numbered().metrics().map(|m| m.value).collect();
        assert_eq!(values, (1..=values.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn adding_stats_adds_every_field() {
        let mut total = SfuStats::numbered();
        total.add(&SfuStats::numbered());
        let doubled: Vec<u64> = total.metrics().map(|m| m.value).collect();
        assert_eq!(
            doubled,
            (1..=doubled.len() as u64)
                .map(|n| 2 * n)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn each_counter_is_exported_as_its_own_series_of_a_family_that_fits() {
        let mut series = HashSet::new();
        for metric in SfuStats::default().metrics() {
            assert_eq!(
                metric.label.is_some(),
                metric.family.label.is_some(),
                "{}: a label value exactly when its family has a label",
                metric.field
            );
            assert!(
                series.insert((metric.family.name, metric.label)),
                "{} shares its series with another counter",
                metric.field
            );
            if metric.family.kind == MetricKind::Counter {
                assert!(metric.family.name.ends_with("_total"), "{}", metric.field);
            }
        }
    }
}
