//! The ingest scenario: a teacher's encoder publishes H.264 + AAC over RTMP (the built-in FLV
//! clip, looped in real time through rml_rtmp's client session, as OBS would) into a lesson,
//! and N students receive it over WebRTC. It reports what performance.md asks of the ingest:
//! the server's CPU per ingest stream (from /proc, as the lecture does; the AAC → Opus
//! transcoder, an ffmpeg child of the server, apart) and the latency the server adds, from the
//! RTMP send of a picture to its arrival at a student, pictures matched by content
//! ([`frames`]: H.264 passes through untouched).

pub mod depacketize;
pub mod flv;
pub mod frames;
pub mod publisher;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::clip::Clips;
use crate::participant::{Plan, Role, Server};
use crate::peer::Sending;
use crate::report::Snapshot;
use crate::scenario::{
    RunConfig, RunError, Running, server_process, server_usage, set_up, snapshot, spawn,
};
use crate::usage::{self, UsageSource};
use flv::FlvClip;
use frames::SentFrames;
use publisher::{Published, Publisher};

/// How long participants get to leave cleanly at the end.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// What the ingest scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub scenario: &'static str,
    pub students: usize,
    pub interrupted: bool,
    /// The steady window the figures cover, once every student receives.
    pub window_secs: f64,
    /// Where the server's CPU came from (`proc` for the figures to mean anything).
    pub server_source: UsageSource,
    /// classroomd's own CPU over the window, as a share of one core (%): RTMP, FLV, RTP
    /// packetization and the SFU forwarding to the students.
    pub server_cpu_percent: Option<f64>,
    /// The same per ingest stream (one stream in this scenario).
    pub server_cpu_percent_per_stream: Option<f64>,
    /// classroomd's ffmpeg children over the window (the AAC → Opus transcoder), % of a core.
    pub transcoder_cpu_percent: Option<f64>,
    /// Pictures the publisher sent in the window, and those that reached a student and were
    /// matched, over all students.
    pub pictures_sent: u64,
    pub pictures_matched: u64,
    /// RTMP send → arrival at a student, over every matched picture in the window (ms).
    pub added_latency_ms: Latency,
    pub loss_percent: f64,
    /// Published in all: frames and FLV body bytes.
    pub video_frames_published: u64,
    pub audio_frames_published: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl IngestReport {
    /// The human-readable summary.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2} %"));
        let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0} ms"));
        let mut out = format!(
            "ingest: 1 RTMP stream (H.264 640x360 30 fps without B-frames + AAC) → {} students, {:.1} s measured{}\n",
            self.students,
            self.window_secs,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        out += &format!(
            "  server CPU per ingest stream:   {} of a core (target ≤ 3 %; {} with the forwarding to the students)\n",
            pct(self.server_cpu_percent_per_stream),
            pct(self.server_cpu_percent)
        );
        out += &format!(
            "  AAC → Opus transcoder (ffmpeg): {} of a core\n",
            pct(self.transcoder_cpu_percent)
        );
        out += &format!(
            "  added latency (RTMP send → student): p50 {}, p95 {}, p99 {}, max {} (target ≤ 300 ms)\n",
            ms(self.added_latency_ms.p50),
            ms(self.added_latency_ms.p95),
            ms(self.added_latency_ms.p99),
            ms(self.added_latency_ms.max)
        );
        out += &format!(
            "  pictures matched at the students: {} of {} sent × {} students; loss {:.3} %\n",
            self.pictures_matched, self.pictures_sent, self.students, self.loss_percent
        );
        for error in &self.errors {
            out += &format!("  error: {error}\n");
        }
        out
    }
}

/// Runs the ingest scenario against classroomd to its end (or until `stop`).
pub async fn run(
    config: RunConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<IngestReport, RunError> {
    let clip = FlvClip::builtin().map_err(|e| RunError::Teacher(format!("the FLV clip: {e}")))?;
    let clips = Clips::builtin()?;
    let api = crate::api::Api::new(&config.server);
    let (server_source, server_pid) = server_process(&config);
    let lesson = set_up(&api, &config).await?;
    let Server::Classroom {
        api: teacher,
        lesson: lesson_id,
    } = &lesson.teacher
    else {
        return Err(RunError::Unsupported("ingest"));
    };
    let (url, key) = teacher.stream_key(*lesson_id).await?;
    let publisher = Publisher::connect(&url, &key)
        .await
        .map_err(|e| RunError::Teacher(e.to_string()))?;
    let frames = Arc::new(SentFrames::default());
    let (published_tx, published) = watch::channel(Published::default());
    let (stop_publisher, publisher_stopped) = watch::channel(false);
    let publishing = {
        let frames = frames.clone();
        tokio::spawn(async move {
            publisher
                .run(&clip, frames, published_tx, publisher_stopped)
                .await
        })
    };

    let interval = Duration::from_secs_f64(1.0 / config.join_rate.max(0.01));
    let mut participants: Vec<Running> = Vec::new();
    let mut interrupted = false;
    for (index, server) in lesson.students.iter().enumerate() {
        participants.push(spawn(Plan {
            name: format!("student-{index}"),
            role: Role::Student,
            server: server.clone(),
            sending: Sending {
                audio: false,
                video_layers: 0,
            },
            receive: 1,
            bind_ip: config.bind_ip,
            transport: config.transport,
            clips: clips.clone(),
            stage_requests: None,
            ask_stage: None,
            h264: Some(frames.clone()),
        }));
        interrupted |= pause(interval, &mut stop).await;
        if interrupted {
            break;
        }
    }
    // Joins (and their GOP replays, sent late on purpose) are not the steady state.
    interrupted |= pause(Duration::from_secs(3), &mut stop).await;
    let before = snapshot(&participants);
    let t0 = Instant::now();
    let server0 = server_usage(&api, server_source, server_pid).await;
    let children0 = server_pid.map(usage::children_cpu).unwrap_or_default();
    let sent0 = published.borrow().video_frames;
    interrupted |= pause(config.duration, &mut stop).await;
    let after = snapshot(&participants);
    let window = t0.elapsed().as_secs_f64();
    let server1 = server_usage(&api, server_source, server_pid).await;
    let children1 = server_pid.map(usage::children_cpu).unwrap_or_default();
    let counts = *published.borrow();

    let _ = stop_publisher.send(true);
    let mut errors = Vec::new();
    if let Ok(Ok(Err(e))) = tokio::time::timeout(LEAVE_WAIT, publishing).await {
        errors.push(format!("publisher: {e}"));
    }
    for p in &participants {
        let _ = p.stop.send(true);
    }
    for p in participants {
        let _ = tokio::time::timeout(LEAVE_WAIT, p.task).await;
    }
    errors.extend(
        after
            .participants
            .iter()
            .filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.name))),
    );

    let server_cpu_percent = server0
        .zip(server1)
        .map(|(a, b)| 100.0 * (b.cpu_seconds - a.cpu_seconds) / window.max(1e-9));
    // Children alive through the whole window (an ffmpeg started or ended inside it is partial).
    let transcoder_cpu_percent = (!children1.is_empty()).then(|| {
        let spent: f64 = children1
            .iter()
            .map(|(pid, cpu)| cpu - children0.get(pid).copied().unwrap_or(0.0))
            .sum();
        100.0 * spent / window.max(1e-9)
    });
    let latency = after.latency_us.since(&before.latency_us);
    let ms = |p: f64| latency.percentile(p).map(|us| us as f64 / 1000.0);
    Ok(IngestReport {
        scenario: "ingest",
        students: config.students,
        interrupted,
        window_secs: window,
        server_source,
        server_cpu_percent,
        server_cpu_percent_per_stream: server_cpu_percent,
        transcoder_cpu_percent,
        pictures_sent: counts.video_frames.saturating_sub(sent0),
        pictures_matched: latency.count(),
        added_latency_ms: Latency {
            p50: ms(50.0),
            p95: ms(95.0),
            p99: ms(99.0),
            max: ms(100.0),
        },
        loss_percent: window_loss(&before, &after),
        video_frames_published: counts.video_frames,
        audio_frames_published: counts.audio_frames,
        errors,
    })
}

fn window_loss(before: &Snapshot, after: &Snapshot) -> f64 {
    let lost = after
        .totals
        .packets_lost
        .saturating_sub(before.totals.packets_lost);
    let expected = after
        .totals
        .packets_expected
        .saturating_sub(before.totals.packets_expected);
    crate::report::loss_percent(lost, expected)
}

/// Waits `wait`; true if the run was stopped meanwhile.
async fn pause(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        changed = stop.changed() => changed.is_ok(),
    }
}
