//! Every Prometheus metric of classroomd, in one place, recorded through verb functions.
//! Each server instance owns its registry, so several servers in one test process do not
//! share counters.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    db_connections_in_use: IntGauge,
    db_connections_open: IntGauge,
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
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(db_connections_in_use.clone()),
            Box::new(db_connections_open.clone()),
        ] {
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
            db_connections_in_use,
            db_connections_open,
        }
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

    /// The database pool as seen at scrape time.
    pub fn db_pool_observed(&self, in_use: u32, open: u32) {
        self.db_connections_in_use.set(i64::from(in_use));
        self.db_connections_open.set(i64::from(open));
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
        let text = metrics.render();
        assert!(text.contains(
            "classroom_http_requests_total{method=\"GET\",route=\"/api/v1/courses/{id}\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("classroom_http_request_duration_seconds_bucket"));
        assert!(text.contains("classroom_db_connections_in_use 2"));
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
