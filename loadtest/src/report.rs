//! The run's results: gathered from every participant's record, printed as a progress line
//! while running and as a table and JSON at the end.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::link::Transport;
use crate::participant::{self, Role, SharedRecord};
use crate::peer;
use crate::receiver::StreamKind;
use crate::stats::{Histogram, percentile};
use crate::usage::{Usage, UsageSource};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Percentiles {
        Percentiles {
            p50: percentile(values, 50.0),
            p95: percentile(values, 95.0),
            p99: percentile(values, 99.0),
        }
    }

    /// From a histogram of microseconds, in milliseconds.
    pub fn of_micros(h: &Histogram) -> Percentiles {
        let ms = |p| h.percentile(p).map(|us| us as f64 / 1000.0);
        Percentiles {
            p50: ms(50.0),
            p95: ms(95.0),
            p99: ms(99.0),
        }
    }
}

/// One participant's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantReport {
    pub name: String,
    pub role: Role,
    pub joined: bool,
    /// WebSocket open → first media packet / first video keyframe, in milliseconds.
    pub join_first_packet_ms: Option<f64>,
    pub join_first_keyframe_ms: Option<f64>,
    pub streams: usize,
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub packets_sent: u64,
    pub error: Option<String>,
}

/// Totals over every received stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub packets_received: u64,
    /// RTP bytes received (payload and a 12-byte header per packet).
    pub bytes_received: u64,
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub loss_percent: f64,
    pub packets_sent: u64,
    pub nacks_sent: u64,
    pub plis_sent: u64,
    pub nacks_received_by_publishers: u64,
    pub plis_received_by_publishers: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub source: UsageSource,
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// Server: RSS growth during the run per receiving participant, in bytes. Generator: its
    /// CPU per subscriber, as a share of one core.
    pub per_subscriber: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RampStep {
    pub students: usize,
    /// Students that received media in the step's window (the step fails unless all do).
    pub receiving: usize,
    pub loss_percent: f64,
    pub latency_p99_ms: Option<f64>,
    /// Server CPU over the step's window per packet the students received, in µs.
    pub server_cpu_us_per_packet: Option<f64>,
    pub passed: bool,
}

/// The steady part of a run, once every student has joined and settled, to its end: what the
/// server spent per packet it forwarded (the packets the students received).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    pub secs: f64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_us_per_packet: Option<f64>,
    pub generator_cpu_seconds: Option<f64>,
}

impl Window {
    /// The window between two measurements: (when, server usage, generator usage, totals).
    pub fn between(
        start: (Instant, Option<Usage>, Option<Usage>, &Totals),
        end: (Instant, Option<Usage>, Option<Usage>, &Totals),
    ) -> Window {
        let cpu = |a: Option<Usage>, b: Option<Usage>| Some(b?.cpu_seconds - a?.cpu_seconds);
        let packets_received = end
            .3
            .packets_received
            .saturating_sub(start.3.packets_received);
        let server_cpu_seconds = cpu(start.1, end.1);
        Window {
            secs: end.0.saturating_duration_since(start.0).as_secs_f64(),
            packets_received,
            bytes_received: end.3.bytes_received.saturating_sub(start.3.bytes_received),
            server_cpu_seconds,
            server_cpu_us_per_packet: server_cpu_seconds
                .filter(|_| packets_received > 0)
                .map(|s| s * 1e6 / packets_received as f64),
            generator_cpu_seconds: cpu(start.2, end.2),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    pub max_loss_percent: f64,
    pub max_latency_p99_ms: f64,
    pub steps: Vec<RampStep>,
    /// The most students of a step within both bounds.
    pub capacity: Option<usize>,
    /// Every step passed: the capacity is at least the ramp's limit, not a measured bound.
    pub limited_by_ramp: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub duration_secs: f64,
    /// True when the run was cut short (Ctrl-C).
    pub interrupted: bool,
    pub layers: usize,
    /// How media reached the SFU: `udp` or `tcp`.
    pub transport: Transport,
    pub participants_planned: usize,
    pub participants_joined: usize,
    pub join_first_packet_ms: Percentiles,
    pub join_first_keyframe_ms: Percentiles,
    pub latency_ms: Percentiles,
    pub jitter_ms: BTreeMap<String, Percentiles>,
    /// Mean received bitrate per stream, by layer (`audio`, `180p`, `360p`, `720p`).
    pub bitrate_kbps: BTreeMap<String, f64>,
    pub totals: Totals,
    pub server: ProcessReport,
    pub generator: ProcessReport,
    /// The steady window (lecture, seminar, audio class, churn; not ramp, whose steps have
    /// their own).
    pub window: Option<Window>,
    pub ramp: Option<RampReport>,
    pub participants: Vec<ParticipantReport>,
}

/// Numbers gathered from the records at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub participants: Vec<ParticipantReport>,
    pub latency_us: Histogram,
    pub jitter_ms: BTreeMap<String, Vec<f64>>,
    /// Per layer: (bytes, stream-seconds).
    pub layer_bytes: BTreeMap<String, (u64, f64)>,
    pub totals: Totals,
    pub subscribers: usize,
}

impl Snapshot {
    pub fn take(records: &[SharedRecord], now: Instant) -> Snapshot {
        let mut snap = Snapshot::default();
        for record in records {
            let record = participant::lock(record);
            let mut part = ParticipantReport {
                name: record.name.clone(),
                role: record.role,
                joined: record.id.is_some(),
                join_first_packet_ms: None,
                join_first_keyframe_ms: None,
                streams: 0,
                packets_received: 0,
                packets_expected: 0,
                packets_lost: 0,
                packets_sent: 0,
                error: record.error.clone(),
            };
            let end = record.left_at.unwrap_or(now);
            if let Some(stats) = &record.peer {
                let stats = peer::lock(stats);
                part.packets_sent = stats.packets_sent;
                snap.totals.nacks_sent += stats.nacks_sent.values().sum::<u64>();
                snap.totals.plis_sent += stats.plis_sent.values().sum::<u64>();
                snap.totals.nacks_received_by_publishers +=
                    stats.nacks_received.values().sum::<u64>();
                snap.totals.plis_received_by_publishers +=
                    stats.plis_received.values().sum::<u64>();
                let ms_since_open = |t: Option<Instant>| {
                    let open = record.ws_open?;
                    Some(t?.saturating_duration_since(open).as_secs_f64() * 1000.0)
                };
                let first_packet = stats.streams.values().filter_map(|s| s.first_packet).min();
                let first_key = stats
                    .streams
                    .values()
                    .filter_map(|s| s.first_keyframe)
                    .min();
                part.join_first_packet_ms = ms_since_open(first_packet);
                part.join_first_keyframe_ms = ms_since_open(first_key);
                if !stats.streams.is_empty() {
                    snap.subscribers += 1;
                }
                for stream in stats.streams.values() {
                    part.streams += 1;
                    part.packets_received += stream.loss.received();
                    part.packets_expected += stream.loss.expected();
                    part.packets_lost += stream.loss.lost();
                    snap.totals.bytes_received += stream.bytes_by_layer.values().sum::<u64>();
                    snap.latency_us.merge(&stream.latency_us);
                    let kind = match stream.kind {
                        StreamKind::Audio => "audio",
                        StreamKind::Video => "video",
                    };
                    snap.jitter_ms
                        .entry(kind.to_string())
                        .or_default()
                        .push(stream.jitter.millis(stream.kind.clock_rate()));
                    let seconds = stream
                        .first_packet
                        .map_or(0.0, |t| end.saturating_duration_since(t).as_secs_f64());
                    for (&height, &bytes) in &stream.bytes_by_layer {
                        let layer = match (stream.kind, height) {
                            (StreamKind::Audio, _) => "audio".to_string(),
                            (StreamKind::Video, 0) => {
                                "video (before the first keyframe)".to_string()
                            }
                            (StreamKind::Video, h) => format!("{h}p"),
                        };
                        let entry = snap.layer_bytes.entry(layer).or_default();
                        entry.0 += bytes;
                        entry.1 += seconds;
                    }
                }
            }
            snap.totals.packets_received += part.packets_received;
            snap.totals.packets_expected += part.packets_expected;
            snap.totals.packets_lost += part.packets_lost;
            snap.totals.packets_sent += part.packets_sent;
            snap.participants.push(part);
        }
        snap.totals.loss_percent =
            loss_percent(snap.totals.packets_lost, snap.totals.packets_expected);
        snap
    }

    /// The one-line progress summary.
    pub fn progress(&self, elapsed_secs: f64) -> String {
        let joined = self.participants.iter().filter(|p| p.joined).count();
        let errors = self
            .participants
            .iter()
            .filter(|p| p.error.is_some())
            .count();
        let p99 = self
            .latency_us
            .percentile(99.0)
            .map_or("-".to_string(), |us| format!("{:.1}", us as f64 / 1000.0));
        format!(
            "{elapsed_secs:6.1}s  joined {joined}/{}  errors {errors}  received {} pkts  loss {:.2}%  latency p99 {p99} ms",
            self.participants.len(),
            self.totals.packets_received,
            self.totals.loss_percent,
        )
    }
}

pub fn loss_percent(lost: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / expected as f64
    }
}

/// Builds the final report from the last snapshot and the measured process usage.
#[allow(clippy::too_many_arguments)]
pub fn build(
    scenario: &str,
    duration_secs: f64,
    interrupted: bool,
    layers: usize,
    transport: Transport,
    snap: Snapshot,
    server: (UsageSource, Option<Usage>, Option<Usage>),
    generator: (Option<Usage>, Option<Usage>),
    window: Option<Window>,
    ramp: Option<RampReport>,
) -> Report {
    let joins = |f: fn(&ParticipantReport) -> Option<f64>| {
        let values: Vec<f64> = snap
            .participants
            .iter()
            .filter(|p| p.role == Role::Student)
            .filter_map(f)
            .collect();
        Percentiles::of(&values)
    };
    let subscribers = snap.subscribers.max(1) as f64;
    let cpu = |before: Option<Usage>, after: Option<Usage>| {
        Some(after?.cpu_seconds - before?.cpu_seconds)
    };
    let server_cpu = cpu(server.1, server.2);
    let server_rss = server.2.and_then(|u| u.rss_bytes);
    // Memory per subscriber: what the server grew by during the run, shared out.
    let server_rss_growth = server_rss
        .zip(server.1.and_then(|u| u.rss_bytes))
        .map(|(after, before)| after.saturating_sub(before));
    let generator_cpu = cpu(generator.0, generator.1);
    Report {
        scenario: scenario.to_string(),
        duration_secs,
        interrupted,
        layers,
        transport,
        participants_planned: snap.participants.len(),
        participants_joined: snap.participants.iter().filter(|p| p.joined).count(),
        join_first_packet_ms: joins(|p| p.join_first_packet_ms),
        join_first_keyframe_ms: joins(|p| p.join_first_keyframe_ms),
        latency_ms: Percentiles::of_micros(&snap.latency_us),
        jitter_ms: snap
            .jitter_ms
            .iter()
            .map(|(k, v)| (k.clone(), Percentiles::of(v)))
            .collect(),
        bitrate_kbps: snap
            .layer_bytes
            .iter()
            .filter(|(_, (_, secs))| *secs > 0.0)
            .map(|(k, (bytes, secs))| (k.clone(), *bytes as f64 * 8.0 / secs / 1000.0))
            .collect(),
        totals: snap.totals.clone(),
        server: ProcessReport {
            source: server.0,
            cpu_seconds: server_cpu,
            rss_bytes: server_rss,
            per_subscriber: server_rss_growth.map(|b| b as f64 / subscribers),
        },
        generator: ProcessReport {
            source: UsageSource::Proc,
            cpu_seconds: generator_cpu,
            rss_bytes: generator.1.and_then(|u| u.rss_bytes),
            per_subscriber: generator_cpu.map(|c| c / duration_secs.max(0.001) / subscribers),
        },
        window,
        ramp,
        participants: snap.participants,
    }
}

impl Report {
    /// A table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let pct = |p: &Percentiles| {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            format!("{:>9} {:>9} {:>9}", f(p.p50), f(p.p95), f(p.p99))
        };
        let _ = writeln!(
            out,
            "scenario {}  {:.1} s{}  layers {}  {}  participants {}/{} joined",
            self.scenario,
            self.duration_secs,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
            self.layers,
            self.transport.name(),
            self.participants_joined,
            self.participants_planned
        );
        let _ = writeln!(out, "{:<32} {:>9} {:>9} {:>9}", "", "p50", "p95", "p99");
        let _ = writeln!(
            out,
            "{:<32} {}",
            "join → first packet (ms)",
            pct(&self.join_first_packet_ms)
        );
        let _ = writeln!(
            out,
            "{:<32} {}",
            "join → first keyframe (ms)",
            pct(&self.join_first_keyframe_ms)
        );
        let _ = writeln!(
            out,
            "{:<32} {}",
            "one-way latency (ms)",
            pct(&self.latency_ms)
        );
        for (kind, p) in &self.jitter_ms {
            let _ = writeln!(out, "{:<32} {}", format!("jitter {kind} (ms)"), pct(p));
        }
        for (layer, kbps) in &self.bitrate_kbps {
            let _ = writeln!(
                out,
                "{:<32} {kbps:>9.0}",
                format!("bitrate {layer} (kbit/s/stream)")
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "packets: received {} lost {} ({:.3}%), sent {}; NACKs sent {}, PLIs sent {}; received by publishers: NACKs {}, PLIs {}",
            t.packets_received,
            t.packets_lost,
            t.loss_percent,
            t.packets_sent,
            t.nacks_sent,
            t.plis_sent,
            t.nacks_received_by_publishers,
            t.plis_received_by_publishers
        );
        let mib = |b: Option<u64>| {
            b.map_or("-".to_string(), |b| {
                format!("{:.1} MiB", b as f64 / 1048576.0)
            })
        };
        let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.2} s"));
        let _ = writeln!(
            out,
            "server ({:?}): CPU {}, RSS {}, RSS growth per subscriber {}",
            self.server.source,
            secs(self.server.cpu_seconds),
            mib(self.server.rss_bytes),
            self.server
                .per_subscriber
                .map_or("-".to_string(), |b| format!("{:.0} KiB", b / 1024.0)),
        );
        let _ = writeln!(
            out,
            "generator: CPU {}, {} of a core per subscriber",
            secs(self.generator.cpu_seconds),
            self.generator
                .per_subscriber
                .map_or("-".to_string(), |c| format!("{:.2}%", c * 100.0)),
        );
        if let Some(w) = &self.window {
            let _ = writeln!(
                out,
                "steady window {:.1} s: {} packets received, server CPU {}, {} per packet",
                w.secs,
                w.packets_received,
                secs(w.server_cpu_seconds),
                w.server_cpu_us_per_packet
                    .map_or("-".to_string(), |us| format!("{us:.2} µs")),
            );
        }
        if let Some(ramp) = &self.ramp {
            for step in &ramp.steps {
                let _ = writeln!(
                    out,
                    "ramp: {:>5} students ({} receiving)  loss {:.3}%  p99 {}  server {}  {}",
                    step.students,
                    step.receiving,
                    step.loss_percent,
                    step.latency_p99_ms
                        .map_or("-".to_string(), |v| format!("{v:.1} ms")),
                    step.server_cpu_us_per_packet
                        .map_or("-".to_string(), |v| format!("{v:.2} µs/packet")),
                    if step.passed { "ok" } else { "over the bound" }
                );
            }
            let capacity = match (ramp.capacity, ramp.limited_by_ramp) {
                (None, _) => "none".to_string(),
                (Some(c), true) => format!("at least {c} (the ramp's limit)"),
                (Some(c), false) => c.to_string(),
            };
            let _ = writeln!(
                out,
                "capacity: {capacity} students at < {}% loss and p99 latency < {} ms",
                ramp.max_loss_percent, ramp.max_latency_p99_ms
            );
        }
        let failed: Vec<&ParticipantReport> = self
            .participants
            .iter()
            .filter(|p| p.error.is_some())
            .collect();
        for p in failed.iter().take(10) {
            let _ = writeln!(
                out,
                "error: {}: {}",
                p.name,
                p.error.as_deref().unwrap_or("")
            );
        }
        out
    }
}
