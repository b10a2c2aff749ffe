//! Every Prometheus metric of classroomd, in one place, recorded through verb functions.
//! Each server instance owns its registry, so several servers in one test process do not
//! share counters.

use std::collections::HashMap;
use std::time::Duration;

use classroom_courses::restream::DestinationState;
use classroom_media::SfuStats;
use classroom_media::SubscriberStats;
use classroom_media::driver::WorkerStats;
use classroom_rtmp::IngestSnapshot;
use classroom_signaling::SignalingSnapshot;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

mod cluster;
mod media;

use cluster::ClusterMetrics;
use media::{SfuMetrics, WorkerMetrics};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_connections_open: IntGauge,
    http_connections_refused: IntCounterVec,
    http_header_timeouts: IntCounter,
    db_connections_in_use: IntGauge,
    db_connections_open: IntGauge,
    live: LiveMetrics,
    restream_destinations: IntGaugeVec,
    restream_restarts: IntCounter,
    recorder: RecorderMetrics,
    ingest: IngestMetrics,
    room_events_overflow: IntCounterVec,
    cluster: ClusterMetrics,
}

/// The RTMP ingest: encoder sessions, what they send, ffmpeg processes; WHIP encoders and
/// WHEP players.
struct IngestMetrics {
    sessions: IntCounterVec,
    active_encoders: IntGauge,
    bytes_in: IntCounter,
    frames_in: IntCounterVec,
    transcoders: IntGauge,
    whip_encoders: IntGauge,
    whep_players: IntGauge,
}

/// The recorder: recordings while live, and the replay job queue.
struct RecorderMetrics {
    recordings_active: IntGauge,
    recordings_degraded: IntGauge,
    tracks_recorded: IntCounter,
    bytes_written: IntCounter,
    packets_dropped: IntCounter,
    jobs: IntGaugeVec,
    jobs_finished: IntCounterVec,
    job_seconds: prometheus::Counter,
}

impl RecorderMetrics {
    fn new() -> Self {
        let valid = "static metric definition to be valid";
        RecorderMetrics {
            recordings_active: IntGauge::new(
                "classroom_recordings_active",
                "Lessons being recorded on this node",
            )
            .expect(valid),
            recordings_degraded: IntGauge::new(
                "classroom_recordings_degraded",
                "Recordings losing packets now because the disk does not keep up (live \
                 forwarding is not affected)",
            )
            .expect(valid),
            tracks_recorded: IntCounter::new(
                "classroom_recorder_tracks_total",
                "Tracks recorded (each published track of a recorded room)",
            )
            .expect(valid),
            bytes_written: IntCounter::new(
                "classroom_recorder_bytes_written_total",
                "Bytes the recorder wrote to disk",
            )
            .expect(valid),
            packets_dropped: IntCounter::new(
                "classroom_recorder_packets_dropped_total",
                "Packets the recorder could not keep up with (slow disk), lost from recordings",
            )
            .expect(valid),
            jobs: IntGaugeVec::new(
                Opts::new(
                    "classroom_replay_jobs",
                    "Replay jobs in the queue, by state",
                ),
                &["state"],
            )
            .expect(valid),
            jobs_finished: IntCounterVec::new(
                Opts::new(
                    "classroom_replay_jobs_finished_total",
                    "Replay job attempts this node finished, by outcome",
                ),
                &["outcome"],
            )
            .expect(valid),
            job_seconds: prometheus::Counter::new(
                "classroom_replay_job_seconds_total",
                "Time spent processing replay jobs on this node (divide by the finished count \
                 for the mean job duration)",
            )
            .expect(valid),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.recordings_active.clone()),
            Box::new(self.recordings_degraded.clone()),
            Box::new(self.tracks_recorded.clone()),
            Box::new(self.bytes_written.clone()),
            Box::new(self.packets_dropped.clone()),
            Box::new(self.jobs.clone()),
            Box::new(self.jobs_finished.clone()),
            Box::new(self.job_seconds.clone()),
        ]
    }
}

/// Rooms, signaling and the SFU. The crates count with plain atomics; these mirror the
/// counts at scrape time.
struct LiveMetrics {
    rooms_open: IntGauge,
    signaling_connections: IntGauge,
    participants: IntGauge,
    joins: IntCounterVec,
    signaling_messages: IntCounterVec,
    sfu: SfuMetrics,
    workers: WorkerMetrics,
    join_seconds: Histogram,
    subscriber_rtt: Histogram,
    subscriber_loss: Histogram,
    subscriber_jitter: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "classroom_http_requests_total",
                "HTTP requests answered, by route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition to be valid");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "classroom_http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("static metric definition to be valid");
        let http_connections_open = IntGauge::new(
            "classroom_http_connections_open",
            "HTTP connections open, WebSockets included",
        )
        .expect("static metric definition to be valid");
        let http_connections_refused = IntCounterVec::new(
            Opts::new(
                "classroom_http_connections_refused_total",
                "HTTP connections closed at accept: address_full (http.max_connections_per_address), \
                 server_full (http.max_connections), accept_failed (out of descriptors)",
            ),
            &["reason"],
        )
        .expect("static metric definition to be valid");
        let http_header_timeouts = IntCounter::new(
            "classroom_http_header_timeouts_total",
            "HTTP connections closed for sending no complete request head within \
             http.header_read_timeout_secs (silent, trickling or idle keep-alive)",
        )
        .expect("static metric definition to be valid");
        let db_connections_in_use = IntGauge::new(
            "classroom_db_connections_in_use",
            "Database connections checked out of the pool",
        )
        .expect("static metric definition to be valid");
        let db_connections_open = IntGauge::new(
            "classroom_db_connections_open",
            "Database connections open in the pool",
        )
        .expect("static metric definition to be valid");
        let live = LiveMetrics::new();
        let restream_destinations = IntGaugeVec::new(
            Opts::new(
                "classroom_restream_destinations",
                "Restream destinations of live lessons, by state",
            ),
            &["state"],
        )
        .expect("static metric definition to be valid");
        let restream_restarts = IntCounter::new(
            "classroom_restream_restarts_total",
            "Restream destination connections started again after a failure",
        )
        .expect("static metric definition to be valid");
        let recorder = RecorderMetrics::new();
        let ingest = IngestMetrics::new();
        let cluster = ClusterMetrics::new();
        let room_events_overflow = IntCounterVec::new(
            Opts::new(
                "classroom_room_events_overflow_total",
                "Room events that found a consumer's queue full (crate::events): dropped, or \
                 waited for",
            ),
            &["consumer", "outcome"],
        )
        .expect("static metric definition to be valid");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(http_connections_open.clone()),
            Box::new(http_connections_refused.clone()),
            Box::new(http_header_timeouts.clone()),
            Box::new(db_connections_in_use.clone()),
            Box::new(db_connections_open.clone()),
            Box::new(restream_destinations.clone()),
            Box::new(restream_restarts.clone()),
            Box::new(room_events_overflow.clone()),
        ]
        .into_iter()
        .chain(live.collectors())
        .chain(recorder.collectors())
        .chain(ingest.collectors())
        .chain(cluster.collectors())
        {
            registry
                .register(collector)
                .expect("each metric to be registered once");
        }
        // CPU seconds, resident memory, open file descriptors of this process (process_*).
        let process = prometheus::process_collector::ProcessCollector::for_self();
        registry
            .register(Box::new(process))
            .expect("the process collector to be registered once");
        Metrics {
            registry,
            http_requests,
            http_duration,
            http_connections_open,
            http_connections_refused,
            http_header_timeouts,
            db_connections_in_use,
            db_connections_open,
            live,
            restream_destinations,
            restream_restarts,
            recorder,
            ingest,
            room_events_overflow,
            cluster,
        }
    }

    /// A room event was dropped because `consumer`'s queue was full.
    pub fn room_event_dropped(&self, consumer: &str) {
        self.room_events_overflow
            .with_label_values(&[consumer, "dropped"])
            .inc();
    }

    /// The dispatcher waited for room in `consumer`'s queue.
    pub fn room_event_waited(&self, consumer: &str) {
        self.room_events_overflow
            .with_label_values(&[consumer, "waited"])
            .inc();
    }

    /// An HTTP request was answered. `route` is the template (`/api/v1/courses/{id}`), never
    /// the raw path, so the number of series stays bounded.
    pub fn http_request_finished(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// An HTTP connection was admitted.
    pub fn http_connection_opened(&self) {
        self.http_connections_open.inc();
    }

    /// An admitted HTTP connection (or the WebSocket it became) closed.
    pub fn http_connection_closed(&self) {
        self.http_connections_open.dec();
    }

    /// A connection was closed at accept (`reason` as the metric's help lists).
    pub fn http_connection_refused(&self, reason: &str) {
        self.http_connections_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// A connection was closed for not sending a request head in time.
    pub fn http_header_timed_out(&self) {
        self.http_header_timeouts.inc();
    }

    /// The database pool as seen at scrape time.
    pub fn db_pool_observed(&self, in_use: u32, open: u32) {
        self.db_connections_in_use.set(i64::from(in_use));
        self.db_connections_open.set(i64::from(open));
    }

    /// A participant's join completed: from its WebSocket opening to the first media packet
    /// the SFU sent it.
    pub fn media_join_completed(&self, elapsed: Duration) {
        self.live.join_seconds.observe(elapsed.as_secs_f64());
    }

    /// A subscriber's connection sample (about one a second per subscriber).
    pub fn subscriber_stats_observed(&self, stats: SubscriberStats) {
        let live = &self.live;
        if let Some(rtt) = stats.rtt {
            live.subscriber_rtt.observe(rtt.as_secs_f64());
        }
        if let Some(ppm) = stats.loss_ppm {
            live.subscriber_loss.observe(f64::from(ppm) / 1e6);
        }
        if let Some(jitter) = stats.jitter {
            live.subscriber_jitter.observe(jitter.as_secs_f64());
        }
    }

    /// The node registry as seen at scrape time (a node of a cluster).
    pub fn cluster_observed(&self, status: &crate::cluster::ClusterStatus) {
        self.cluster.observed(status);
    }

    /// Rooms, signaling and SFU counters as seen at scrape time.
    pub fn live_observed(
        &self,
        rooms_open: usize,
        signaling: SignalingSnapshot,
        sfu: Option<SfuStats>,
    ) {
        let live = &self.live;
        live.rooms_open.set(gauge_value(rooms_open as u64));
        live.signaling_connections
            .set(gauge_value(signaling.connections_open));
        live.participants.set(gauge_value(signaling.participants));
        sync(&live.joins, "accepted", signaling.joins);
        sync(&live.joins, "refused", signaling.joins_refused);
        sync(&live.signaling_messages, "received", signaling.messages);
        sync(
            &live.signaling_messages,
            "refused",
            signaling.messages_refused,
        );
        sync(
            &live.signaling_messages,
            "rate_limited",
            signaling.rate_limited,
        );
        if let Some(sfu) = sfu {
            live.sfu.observed(sfu);
        }
    }

    /// Each media worker's rooms, peers and packets (label `worker`), as seen at scrape time.
    pub fn media_workers_observed(&self, workers: &[WorkerStats]) {
        self.live.workers.observed(workers);
    }

    /// Restream destinations by state (idle ones are not counted) and restarts so far, as
    /// seen at scrape time.
    pub fn restream_observed(&self, by_state: &HashMap<DestinationState, usize>, restarts: u64) {
        for state in DestinationState::ALL {
            if state == DestinationState::Idle {
                continue;
            }
            let count = by_state.get(&state).copied().unwrap_or(0);
            self.restream_destinations
                .with_label_values(&[state.as_str()])
                .set(gauge_value(count as u64));
        }
        sync_one(&self.restream_restarts, restarts);
    }

    /// The recorder's counters and the job queue (by state, when the database answered) as
    /// seen at scrape time.
    pub fn recorder_observed(
        &self,
        stats: classroom_recorder::RecorderSnapshot,
        jobs: Option<Vec<(classroom_courses::model::JobState, i64)>>,
    ) {
        let r = &self.recorder;
        r.recordings_active.set(stats.recordings_active);
        r.recordings_degraded.set(stats.recordings_degraded);
        for (counter, value) in [
            (&r.tracks_recorded, stats.tracks_recorded),
            (&r.bytes_written, stats.bytes_written),
            (&r.packets_dropped, stats.packets_dropped),
        ] {
            sync_one(counter, value);
        }
        sync(&r.jobs_finished, "succeeded", stats.jobs_succeeded);
        sync(&r.jobs_finished, "failed", stats.jobs_failed);
        let seconds = stats.job_millis as f64 / 1000.0;
        if seconds > r.job_seconds.get() {
            r.job_seconds.inc_by(seconds - r.job_seconds.get());
        }
        for (state, count) in jobs.into_iter().flatten() {
            r.jobs.with_label_values(&[state.as_str()]).set(count);
        }
    }

    /// The RTMP ingest's counters as seen at scrape time.
    pub fn ingest_observed(&self, ingest: &IngestSnapshot) {
        let m = &self.ingest;
        for (outcome, value) in &ingest.sessions {
            sync(&m.sessions, outcome.as_str(), *value);
        }
        m.active_encoders.set(gauge_value(ingest.active_encoders));
        sync_one(&m.bytes_in, ingest.bytes_in);
        sync(&m.frames_in, "video", ingest.video_frames_in);
        sync(&m.frames_in, "audio", ingest.audio_frames_in);
        m.transcoders.set(gauge_value(ingest.transcoders_running));
    }

    /// WHIP encoders publishing and WHEP players watching now.
    pub fn whip_observed(&self, encoders: usize, players: usize) {
        let m = &self.ingest;
        m.whip_encoders.set(gauge_value(encoders as u64));
        m.whep_players.set(gauge_value(players as u64));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl LiveMetrics {
    fn new() -> Self {
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).expect("static metric definition to be valid")
        };
        let counters = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
                .expect("static metric definition to be valid")
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("static metric definition to be valid")
        };
        LiveMetrics {
            rooms_open: gauge(
                "classroom_rooms_open",
                "Rooms (live sessions of lessons) open on this node",
            ),
            signaling_connections: gauge(
                "classroom_signaling_connections",
                "Signaling WebSockets open",
            ),
            participants: gauge(
                "classroom_participants",
                "Participants in rooms, connected or reconnecting",
            ),
            joins: counters(
                "classroom_signaling_joins_total",
                "Signaling sessions by join outcome",
                "outcome",
            ),
            signaling_messages: counters(
                "classroom_signaling_messages_total",
                "Signaling messages after the join, by outcome",
                "outcome",
            ),
            sfu: SfuMetrics::new(),
            workers: WorkerMetrics::new(),
            join_seconds: histogram(
                "classroom_media_join_seconds",
                "Join time: from the signaling WebSocket opening to the first media packet \
                 the SFU sent the participant",
                &[
                    0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
                ],
            ),
            subscriber_rtt: histogram(
                "classroom_media_subscriber_rtt_seconds",
                "Round-trip time of each subscriber's connection, sampled about once a second",
                &[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0,
                ],
            ),
            subscriber_loss: histogram(
                "classroom_media_subscriber_loss_ratio",
                "Fraction of the media sent to each subscriber that it lost, sampled about \
                 once a second",
                &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            ),
            subscriber_jitter: histogram(
                "classroom_media_subscriber_jitter_seconds",
                "Interarrival jitter each subscriber reports (its worst stream), sampled about \
                 once a second",
                &[0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5],
            ),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        let mut collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.rooms_open.clone()),
            Box::new(self.signaling_connections.clone()),
            Box::new(self.participants.clone()),
            Box::new(self.joins.clone()),
            Box::new(self.signaling_messages.clone()),
            Box::new(self.join_seconds.clone()),
            Box::new(self.subscriber_rtt.clone()),
            Box::new(self.subscriber_loss.clone()),
            Box::new(self.subscriber_jitter.clone()),
        ];
        collectors.extend(self.sfu.collectors());
        collectors.extend(self.workers.collectors());
        collectors
    }
}

impl IngestMetrics {
    fn new() -> Self {
        let valid = "static metric definition to be valid";
        IngestMetrics {
            sessions: IntCounterVec::new(
                Opts::new(
                    "classroom_rtmp_sessions_total",
                    "RTMP encoder connections by outcome (accepted, resumed, wrong_key, in_use, \
                     unsupported, no_publish, over_limit)",
                ),
                &["outcome"],
            )
            .expect(valid),
            active_encoders: IntGauge::new(
                "classroom_rtmp_active_encoders",
                "Lessons with an RTMP encoder publishing or waiting for it to reconnect",
            )
            .expect(valid),
            bytes_in: IntCounter::new(
                "classroom_rtmp_received_bytes_total",
                "Bytes received from RTMP encoders",
            )
            .expect(valid),
            frames_in: IntCounterVec::new(
                Opts::new(
                    "classroom_rtmp_frames_total",
                    "Video pictures and audio frames from RTMP encoders passed to the SFU",
                ),
                &["kind"],
            )
            .expect(valid),
            transcoders: IntGauge::new(
                "classroom_rtmp_transcoders_running",
                "ffmpeg processes converting encoder media (B-frame video, AAC audio)",
            )
            .expect(valid),
            whip_encoders: IntGauge::new(
                "classroom_whip_encoders",
                "WHIP encoders publishing into lessons on this node",
            )
            .expect(valid),
            whep_players: IntGauge::new(
                "classroom_whep_players",
                "WHEP players watching lessons on this node (audience, not participants)",
            )
            .expect(valid),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.sessions.clone()),
            Box::new(self.active_encoders.clone()),
            Box::new(self.bytes_in.clone()),
            Box::new(self.frames_in.clone()),
            Box::new(self.transcoders.clone()),
            Box::new(self.whip_encoders.clone()),
            Box::new(self.whep_players.clone()),
        ]
    }
}

pub(crate) fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Advances a counter to a monotonic count kept elsewhere.
fn sync(counters: &IntCounterVec, label: &str, value: u64) {
    let counter: IntCounter = counters.with_label_values(&[label]);
    let current = counter.get();
    if value > current {
        counter.inc_by(value - current);
    }
}

/// Advances a counter without labels to a monotonic count kept elsewhere.
pub(crate) fn sync_one(counter: &IntCounter, value: u64) {
    let current = counter.get();
    if value > current {
        counter.inc_by(value - current);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_pool_and_process() {
        let metrics = Metrics::new();
        metrics.http_request_finished("GET", "/api/v1/courses/{id}", 200, Duration::from_millis(3));
        metrics.db_pool_observed(2, 5);
        metrics.live_observed(
            2,
            SignalingSnapshot {
                connections_open: 3,
                joins: 5,
                ..SignalingSnapshot::default()
            },
            Some(SfuStats {
                rtp_packets_forwarded: 40,
                ..SfuStats::default()
            }),
        );
        metrics.live_observed(
            2,
            SignalingSnapshot {
                connections_open: 1,
                joins: 7,
                ..SignalingSnapshot::default()
            },
            Some(SfuStats {
                rtp_packets_forwarded: 90,
                ..SfuStats::default()
            }),
        );
        metrics.ingest_observed(&IngestSnapshot {
            sessions: vec![(classroom_rtmp::SessionOutcome::WrongKey, 3)],
            active_encoders: 1,
            bytes_in: 4096,
            video_frames_in: 30,
            ..IngestSnapshot::default()
        });
        let text = metrics.render();
        assert!(text.contains("classroom_rooms_open 2"), "{text}");
        assert!(text.contains("classroom_rtmp_sessions_total{outcome=\"wrong_key\"} 3"));
        assert!(text.contains("classroom_rtmp_active_encoders 1"));
        assert!(text.contains("classroom_rtmp_received_bytes_total 4096"));
        assert!(text.contains("classroom_rtmp_frames_total{kind=\"video\"} 30"));
        assert!(text.contains("classroom_signaling_connections 1"));
        assert!(text.contains("classroom_signaling_joins_total{outcome=\"accepted\"} 7"));
        assert!(text.contains("classroom_media_rtp_packets_total{what=\"forwarded\"} 90"));
        assert!(text.contains(
            "classroom_http_requests_total{method=\"GET\",route=\"/api/v1/courses/{id}\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("classroom_http_request_duration_seconds_bucket"));
        assert!(text.contains("classroom_db_connections_in_use 2"));
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    #[test]
    fn every_sfu_counter_is_exported_with_its_own_value() {
        let metrics = Metrics::new();
        let sfu = SfuStats::numbered();
        metrics.live_observed(0, SignalingSnapshot::default(), Some(sfu));
        let text = metrics.render();
        for metric in sfu.metrics() {
            let series = match (metric.family.label, metric.label) {
                (Some(name), Some(value)) => {
                    format!("{}{{{name}=\"{value}\"}}", metric.family.name)
                }
                _ => metric.family.name.to_string(),
            };
            let line = format!("{series} {}", metric.value);
            assert!(
                text.lines().any(|l| l == line),
                "{} is not exported as {line}:\n{text}",
                metric.field
            );
            assert!(
                text.contains(&format!(
                    "# HELP {} {}",
                    metric.family.name, metric.family.help
                )),
                "{}",
                metric.field
            );
        }
    }

    #[test]
    fn joins_and_subscriber_samples_are_histograms() {
        let metrics = Metrics::new();
        metrics.media_join_completed(Duration::from_millis(120));
        metrics.subscriber_stats_observed(SubscriberStats {
            rtt: Some(Duration::from_millis(30)),
            loss_ppm: Some(20_000),
            jitter: None,
        });
        metrics.live_observed(
            0,
            SignalingSnapshot::default(),
            Some(SfuStats {
                nacks_received: 4,
                rtp_retransmitted: 9,
                tcp_connections_open: 2,
                ..SfuStats::default()
            }),
        );
        let text = metrics.render();
        for line in [
            "classroom_media_join_seconds_bucket{le=\"0.15\"} 1",
            "classroom_media_join_seconds_bucket{le=\"0.1\"} 0",
            "classroom_media_subscriber_rtt_seconds_count 1",
            "classroom_media_subscriber_loss_ratio_bucket{le=\"0.02\"} 1",
            "classroom_media_subscriber_loss_ratio_bucket{le=\"0.01\"} 0",
            "classroom_media_subscriber_jitter_seconds_count 0",
            "classroom_media_nacks_total{direction=\"received\"} 4",
            "classroom_media_retransmitted_packets_total 9",
            "classroom_media_tcp_connections 2",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
    }
}
