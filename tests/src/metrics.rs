//! The tests' one reader of `/metrics`: a scrape of the Prometheus text, looked up by series
//! (`name{labels}` exactly as the text shows it), and waiting until a scrape satisfies a
//! condition (the SFU's counters are read at scrape time, its samples once a second).

use std::time::{Duration, Instant};

use crate::TestServer;

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
}

impl Scrape {
    pub fn new(text: String) -> Self {
        Scrape { text }
    }

    /// The value of one series: `classroom_rooms_open`, or
    /// `classroom_media_nacks_total{direction="received"}` with its labels as the text shows
    /// them.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.samples()
            .find(|(name, _)| *name == series)
            .map(|(_, value)| value)
    }

    /// The value of a series that must be there.
    pub fn expect(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }

    /// Whether any series of the metric `name` (with any labels) has a sample.
    pub fn has_samples_of(&self, name: &str) -> bool {
        self.samples().any(|(series, _)| {
            series
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
        })
    }

    /// Every sample: its series and its value. Comments (`# HELP`, `# TYPE`) are not samples.
    pub fn samples(&self) -> impl Iterator<Item = (&str, f64)> {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series, value.parse().ok()?))
            })
    }
}

impl TestServer {
    /// Scrapes `/metrics`.
    pub async fn metrics(&self) -> Scrape {
        Scrape::new(self.client().get("/metrics").await.text)
    }

    /// The value of one series in `/metrics` (see [`Scrape::value`]), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().await.value(series)
    }

    /// Scrapes until `done` holds, for up to `within`: the last scrape, `Err` if it never held.
    pub async fn metrics_until(
        &self,
        within: Duration,
        done: impl Fn(&Scrape) -> bool,
    ) -> Result<Scrape, Scrape> {
        let deadline = Instant::now() + within;
        loop {
            let scrape = self.metrics().await;
            if done(&scrape) {
                return Ok(scrape);
            }
            if Instant::now() >= deadline {
                return Err(scrape);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP classroom_media_nacks_total NACKs\n\
        # TYPE classroom_media_nacks_total counter\n\
        classroom_media_nacks_total{direction=\"received\"} 4\n\
        classroom_media_nacks_total_extra 9\n\
        classroom_media_peers 3\n";

    #[test]
    fn a_series_is_found_by_its_exact_name_and_labels() {
        let scrape = Scrape::new(TEXT.to_string());
        assert_eq!(
            scrape.value("classroom_media_nacks_total{direction=\"received\"}"),
            Some(4.0)
        );
        assert_eq!(scrape.value("classroom_media_peers"), Some(3.0));
        assert_eq!(scrape.value("classroom_media_nacks_total"), None);
        assert_eq!(scrape.value("classroom_media_peer"), None);
        assert!(scrape.has_samples_of("classroom_media_nacks_total"));
        assert!(!scrape.has_samples_of("classroom_media_nacks"));
    }
}
