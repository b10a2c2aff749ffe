//! The SFU's metrics: its counters as the core declares them ([`SfuStats::metrics`]), summed
//! over the media workers, and each worker's own load (label `worker`).

use std::collections::HashMap;

use classroom_media::driver::WorkerStats;
use classroom_media::{MetricKind, SfuStats};
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::{gauge_value, sync_one};

/// The SFU's counters: one collector per family that [`SfuStats::metrics`] names, so every
/// counter the core declares is exported without a list here to keep in step.
pub(super) struct SfuMetrics(HashMap<&'static str, SfuFamily>);

enum SfuFamily {
    Counters(IntCounterVec),
    Gauges(IntGaugeVec),
}

impl SfuMetrics {
    pub(super) fn new() -> Self {
        let mut families = HashMap::new();
        for metric in SfuStats::default().metrics() {
            let family = metric.family;
            families.entry(family.name).or_insert_with(|| {
                let opts = Opts::new(family.name, family.help);
                let labels: &[&str] = match &family.label {
                    Some(label) => std::slice::from_ref(label),
                    None => &[],
                };
                let valid = "the SFU's metric definitions to be valid";
                match family.kind {
                    MetricKind::Counter => {
                        SfuFamily::Counters(IntCounterVec::new(opts, labels).expect(valid))
                    }
                    MetricKind::Gauge => {
                        SfuFamily::Gauges(IntGaugeVec::new(opts, labels).expect(valid))
                    }
                }
            });
        }
        let metrics = SfuMetrics(families);
        // Series without labels show from the start (0), as plain gauges and counters do.
        for metric in SfuStats::default().metrics() {
            if metric.label.is_none() {
                metrics.observed_one(&metric);
            }
        }
        metrics
    }

    pub(super) fn observed(&self, sfu: SfuStats) {
        for metric in sfu.metrics() {
            self.observed_one(&metric);
        }
    }

    fn observed_one(&self, metric: &classroom_media::Metric) {
        let labels: &[&str] = match &metric.label {
            Some(label) => std::slice::from_ref(label),
            None => &[],
        };
        match self.0.get(metric.family.name) {
            Some(SfuFamily::Counters(counters)) => {
                sync_one(&counters.with_label_values(labels), metric.value)
            }
            Some(SfuFamily::Gauges(gauges)) => gauges
                .with_label_values(labels)
                .set(gauge_value(metric.value)),
            // Every family was made from the same list in `new`.
            None => {}
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.0
            .values()
            .map(|family| -> Box<dyn prometheus::core::Collector> {
                match family {
                    SfuFamily::Counters(c) => Box::new(c.clone()),
                    SfuFamily::Gauges(g) => Box::new(g.clone()),
                }
            })
            .collect()
    }
}

/// Each worker's rooms, peers, packets and datagrams, and the datagrams it dropped for not
/// knowing their sender (among them those sent to the wrong worker's port).
pub(super) struct WorkerMetrics {
    rooms: IntGaugeVec,
    peers: IntGaugeVec,
    rtp_packets: IntCounterVec,
    datagrams: IntCounterVec,
    dropped: IntCounterVec,
}

impl WorkerMetrics {
    pub(super) fn new() -> Self {
        let valid = "static metric definition to be valid";
        let gauges = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["worker"]).expect(valid)
        };
        let counters = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &["worker", label]).expect(valid)
        };
        WorkerMetrics {
            rooms: gauges(
                "classroom_media_worker_rooms",
                "Rooms whose home is this media worker",
            ),
            peers: gauges(
                "classroom_media_worker_peers",
                "WebRTC peers in this media worker",
            ),
            rtp_packets: counters(
                "classroom_media_worker_rtp_packets_total",
                "RTP packets this media worker received from publishers and copies it forwarded",
                "what",
            ),
            datagrams: counters(
                "classroom_media_worker_datagrams_total",
                "UDP datagrams (and ICE-TCP frames) of this media worker",
                "direction",
            ),
            dropped: counters(
                "classroom_media_worker_dropped_total",
                "Datagrams this media worker dropped from senders it does not know: no peer of \
                 its own has that address (unknown_source) or ICE ufrag (unknown_ufrag), as \
                 when they were sent to another worker's port",
                "reason",
            ),
        }
    }

    pub(super) fn observed(&self, workers: &[WorkerStats]) {
        for worker in workers {
            let id = worker.worker.to_string();
            let id = id.as_str();
            let sfu = &worker.sfu;
            self.rooms
                .with_label_values(&[id])
                .set(gauge_value(worker.load.rooms));
            self.peers
                .with_label_values(&[id])
                .set(gauge_value(sfu.peers));
            let counts = [
                (&self.rtp_packets, "received", sfu.rtp_packets_in),
                (&self.rtp_packets, "forwarded", sfu.rtp_packets_forwarded),
                (&self.datagrams, "in", sfu.datagrams_in),
                (&self.datagrams, "out", sfu.datagrams_out),
                (&self.dropped, "unknown_source", sfu.dropped_unknown_source),
                (&self.dropped, "unknown_ufrag", sfu.dropped_unknown_ufrag),
            ];
            for (family, label, value) in counts {
                sync_one(&family.with_label_values(&[id, label]), value);
            }
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.rooms.clone()),
            Box::new(self.peers.clone()),
            Box::new(self.rtp_packets.clone()),
            Box::new(self.datagrams.clone()),
            Box::new(self.dropped.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use classroom_media::placement::{WorkerId, WorkerLoad};

    use super::super::Metrics;
    use super::*;

    #[test]
    fn each_worker_is_exported_with_its_own_label() {
        let metrics = Metrics::new();
        let worker = |index, rooms, forwarded, unknown_ufrag| WorkerStats {
            worker: WorkerId(index),
            load: WorkerLoad { peers: 9, rooms },
            sfu: SfuStats {
                peers: 3,
                rtp_packets_forwarded: forwarded,
                dropped_unknown_ufrag: unknown_ufrag,
                ..SfuStats::default()
            },
        };
        metrics.media_workers_observed(&[worker(0, 2, 100, 0), worker(1, 1, 40, 5)]);
        // Counters follow the workers' own monotonic counts.
        metrics.media_workers_observed(&[worker(0, 2, 150, 0), worker(1, 0, 40, 6)]);
        let text = metrics.render();
        for series in [
            "classroom_media_worker_rooms{worker=\"0\"} 2",
            "classroom_media_worker_rooms{worker=\"1\"} 0",
            "classroom_media_worker_peers{worker=\"1\"} 3",
            "classroom_media_worker_rtp_packets_total{what=\"forwarded\",worker=\"0\"} 150",
            "classroom_media_worker_rtp_packets_total{what=\"forwarded\",worker=\"1\"} 40",
            "classroom_media_worker_dropped_total{reason=\"unknown_ufrag\",worker=\"1\"} 6",
            "classroom_media_worker_dropped_total{reason=\"unknown_ufrag\",worker=\"0\"} 0",
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }
}
