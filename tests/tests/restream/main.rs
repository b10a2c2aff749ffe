//! Restream end to end, against a private nginx with the RTMP module as the third-party live
//! service and ffprobe reading back what arrived:
//! - the pipeline alone: VP8 + Opus in, H.264 + AAC out at the configured size; the service
//!   restarts and the destination resumes by itself (retrying → live); a destination with a
//!   wrong application is retried, then given up with a reason, and the other is unaffected;
//!   H.264 passes through at its own size;
//! - `rtmps://`: the same through TLS (nginx's stream module in front, a test CA given as the
//!   operator's extra CA file): live, and ffprobe sees H.264 and AAC; a destination whose
//!   certificate no CA vouches for fails with a reason that says so;
//! - the server: a teacher (a str0m client sending real VP8 and Opus) in a live lesson with a
//!   destination added through the API; its state reaches `live` in the API and the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use classroom_codec::annexb::AnnexBSplitter;
use classroom_codec::h264::{self, H264Packetizer};
use classroom_loadtest::clip::Clips;
use classroom_protocol::outbound::OutboundPolicy;
use classroom_rtmp::restream::{
    Control, MediaPacket, Notice, PushState, PushTarget, PushTls, Restream, RestreamConfig,
    RetryPolicy, TrackRef, VideoCodec,
};
use classroom_tests::nginx::{Nginx, TlsFront, probe};
use tokio::sync::{mpsc, watch};

mod server;

const VIDEO: TrackRef = TrackRef(1);
const VOICE: TrackRef = TrackRef(2);
const ENCODER: TrackRef = TrackRef(3);
const PROBE_TIMEOUT: Duration = Duration::from_secs(40);

fn config() -> RestreamConfig {
    RestreamConfig {
        ffmpeg: "ffmpeg".into(),
        width: 480,
        height: 270,
        video_kbps: 600,
        audio_kbps: 96,
        retry: RetryPolicy {
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            max_failures: 6,
            reset_after: Duration::from_secs(60),
        },
        tls: PushTls::new(None).expect("Mozilla's roots"),
        // nginx, the stand-in live service, listens on loopback: allowed as an operator would.
        outbound: Arc::new(OutboundPolicy::new(&["127.0.0.0/8"]).expect("a network")),
    }
}

fn target(nginx: &Nginx, app: &str, key: &str) -> PushTarget {
    PushTarget {
        host: "127.0.0.1".into(),
        port: nginx.port,
        app: app.into(),
        url: nginx.url(app),
        stream_key: key.into(),
        tls: false,
    }
}

/// An `rtmps://` destination on one of the TLS ports in front of nginx.
fn tls_target(front: &TlsFront, port: u16, key: &str) -> PushTarget {
    PushTarget {
        host: "127.0.0.1".into(),
        port,
        app: "live".into(),
        url: front.url(port, "live"),
        stream_key: key.into(),
        tls: true,
    }
}

/// Destination states as they were reported, in order.
struct States {
    notices: mpsc::UnboundedReceiver<Notice>,
    seen: Vec<(u64, PushState)>,
}

impl States {
    /// Waits until `destination` reports a state that `wanted` accepts; returns it.
    async fn wait(
        &mut self,
        destination: u64,
        within: Duration,
        wanted: impl Fn(&PushState) -> bool,
    ) -> PushState {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let notice = tokio::time::timeout(left, self.notices.recv()).await;
            match notice {
                Ok(Some(Notice::Status(status))) => {
                    self.seen.push((status.destination, status.state.clone()));
                    if status.destination == destination && wanted(&status.state) {
                        return status.state;
                    }
                }
                Ok(Some(_)) => {}
                _ => panic!(
                    "destination {destination} did not reach the state; seen: {:?}",
                    self.seen
                ),
            }
        }
    }
}

/// Feeds the restream at real-time pace: VP8 (the load tester's 360p clip) on `VIDEO`, Opus on
/// `VOICE`, and H.264 `access_units` on `ENCODER`, until `stop`.
async fn feed(
    restream: Arc<Restream>,
    clips: Arc<Clips>,
    access_units: Vec<Vec<Bytes>>,
    mut stop: watch::Receiver<bool>,
) {
    let video = &clips.layers[1].clip;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut vp8_seq, mut h264, mut opus_seq) = (0u64, H264Packetizer::new(1200, 0), 0u64);
    let mut h264_seq = 0u64;
    for n in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let audio = &clips.audio[n as usize % clips.audio.len()];
        restream.packet(
            VOICE,
            MediaPacket {
                seq_no: opus_seq,
                timestamp: (n * 960) as u32,
                marker: true,
                payload: Arc::from(&audio[..]),
                arrival: now,
            },
        );
        opus_seq += 1;
        // Video at 25 fps: a frame on four ticks of five.
        if n % 5 == 4 {
            continue;
        }
        let frame_no = n - n / 5;
        let timestamp = (frame_no * 3600) as u32;
        let frame = &video.frames[frame_no as usize % video.frames.len()];
        let chunks: Vec<&[u8]> = frame.data.chunks(1100).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut payload = vec![if i == 0 { 0x10 } else { 0x00 }];
            payload.extend_from_slice(chunk);
            restream.packet(
                VIDEO,
                MediaPacket {
                    seq_no: vp8_seq,
                    timestamp,
                    marker: i + 1 == chunks.len(),
                    payload: Arc::from(payload),
                    arrival: now,
                },
            );
            vp8_seq += 1;
        }
        if !access_units.is_empty() {
            let unit = &access_units[frame_no as usize % access_units.len()];
            for packet in h264.packetize(unit, timestamp) {
                restream.packet(
                    ENCODER,
                    MediaPacket {
                        seq_no: h264_seq,
                        timestamp: packet.timestamp,
                        marker: packet.marker,
                        payload: Arc::from(&packet.payload[..]),
                        arrival: now,
                    },
                );
                h264_seq += 1;
            }
        }
    }
}

/// Four seconds of 320×240 H.264 without B-frames (as from OBS), one access unit per frame.
async fn h264_clip(dir: &std::path::Path) -> Vec<Vec<Bytes>> {
    let path = dir.join("encoder.h264");
    let status = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
        ])
        .arg(&path)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success());
    let bytes = std::fs::read(&path).expect("the clip");
    let mut splitter = AnnexBSplitter::default();
    let mut units = splitter.push(&bytes).expect("NAL units");
    units.extend(splitter.finish());
    h264::access_units(units)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_pushes_h264_and_aac_and_resumes_after_the_service_restarts() {
    let Some(mut nginx) = Nginx::start().await else {
        return;
    };
    let clips = Clips::builtin().expect("the load tester's clips");
    let access_units = h264_clip(&nginx.dir()).await;
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let restream = Arc::new(Restream::start(config(), notices_tx));
    let mut states = States {
        notices,
        seen: Vec::new(),
    };
    restream.control(Control::MainView(Some((VIDEO, VideoCodec::Vp8))));
    restream.control(Control::Voices(vec![VOICE]));
    restream.control(Control::Destinations(vec![
        (1, target(&nginx, "live", "lesson-one")),
        (2, target(&nginx, "wrongapp", "lesson-two")),
    ]));
    let (stop, stopped) = watch::channel(false);
    let feeder = tokio::spawn(feed(restream.clone(), clips, access_units, stopped));

    states
        .wait(1, Duration::from_secs(20), |s| *s == PushState::Live)
        .await;
    let streams = probe(&format!("{}/lesson-one", nginx.url("live")), PROBE_TIMEOUT).await;
    assert!(
        streams.streams().contains(&("h264".into(), 480, 270)),
        "H.264 at the configured size: {streams:?}\n{}",
        nginx.log()
    );
    assert!(
        streams.streams().iter().any(|(codec, _, _)| codec == "aac"),
        "AAC: {streams:?}"
    );

    // The wrong application is refused: retried with the reason, then given up.
    let retrying = states
        .wait(2, Duration::from_secs(20), |s| {
            matches!(s, PushState::Retrying(_))
        })
        .await;
    assert!(
        matches!(&retrying, PushState::Retrying(reason) if reason.contains("application")),
        "{retrying:?}"
    );
    let failed = states
        .wait(2, Duration::from_secs(30), |s| {
            matches!(s, PushState::Failed(_))
        })
        .await;
    assert!(
        matches!(&failed, PushState::Failed(reason) if reason.contains("application")),
        "{failed:?}"
    );
    assert!(
        !states
            .seen
            .iter()
            .any(|(d, s)| *d == 1 && *s != PushState::Live && *s != PushState::Connecting),
        "the good destination was not disturbed: {:?}",
        states.seen
    );

    // The service goes away and comes back: the destination resumes by itself.
    nginx.stop();
    states
        .wait(1, Duration::from_secs(20), |s| {
            matches!(s, PushState::Retrying(_))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nginx.run().await;
    states
        .wait(1, Duration::from_secs(30), |s| *s == PushState::Live)
        .await;
    let streams = probe(&format!("{}/lesson-one", nginx.url("live")), PROBE_TIMEOUT).await;
    assert!(
        streams.streams().contains(&("h264".into(), 480, 270)),
        "after the restart: {streams:?}"
    );

    // The encoder becomes the main view: its H.264 passes through at its own size.
    restream.control(Control::MainView(Some((ENCODER, VideoCodec::H264))));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let streams = probe(&format!("{}/lesson-one", nginx.url("live")), PROBE_TIMEOUT).await;
    assert!(
        streams.streams().contains(&("h264".into(), 320, 240)),
        "passed through: {streams:?}"
    );

    let _ = stop.send(true);
    let _ = feeder.await;
}

/// CPU seconds (user + system) of a process from `/proc/PID/stat`, and its parent.
fn cpu_and_parent(pid: &str) -> Option<(f64, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((ticks / 100.0, fields.get(1)?.to_string()))
}

/// Not a test: the CPU one restream costs (VP8 360p → x264 at 1280×720, one voice mixed),
/// printed for the report. `cargo test -p classroom-tests --test restream bench --
/// --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, run by hand"]
async fn bench_restream_cpu() {
    let Some(nginx) = Nginx::start().await else {
        return;
    };
    let secs = 30;
    for (width, height) in [(1280, 720), (640, 360)] {
        let (notices_tx, mut notices) = mpsc::unbounded_channel();
        let restream = Arc::new(Restream::start(
            RestreamConfig {
                width,
                height,
                video_kbps: 2500,
                audio_kbps: 128,
                ..config()
            },
            notices_tx,
        ));
        restream.control(Control::MainView(Some((VIDEO, VideoCodec::Vp8))));
        restream.control(Control::Voices(vec![VOICE]));
        restream.control(Control::Destinations(vec![(
            1,
            target(&nginx, "live", "bench"),
        )]));
        let (stop, stopped) = watch::channel(false);
        let clips = Clips::builtin().expect("clips");
        let me = std::process::id().to_string();
        let before = cpu_and_parent("self").map_or(0.0, |(c, _)| c);
        let feeder = tokio::spawn(feed(restream.clone(), clips, Vec::new(), stopped));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let mut children = 0.0;
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let pid = entry.file_name().to_string_lossy().to_string();
            if let Some((cpu, parent)) = cpu_and_parent(&pid)
                && parent == me
            {
                children += cpu;
            }
        }
        let own = cpu_and_parent("self").map_or(0.0, |(c, _)| c) - before;
        let _ = stop.send(true);
        let _ = feeder.await;
        let mut live = false;
        while let Ok(n) = notices.try_recv() {
            live |= matches!(n, Notice::Status(s) if s.state == PushState::Live);
        }
        println!(
            "restream {width}x{height}, {secs} s, live={live}: ffmpeg children {:.1}% of a core, \
             this process (pipeline, RTMP push, test feeder) {:.1}%",
            children / secs as f64 * 100.0,
            own / secs as f64 * 100.0
        );
        drop(restream);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_destinations_are_pushed_through_tls_and_an_untrusted_certificate_is_named() {
    let Some((nginx, front)) = Nginx::start_with_tls().await else {
        return;
    };
    let clips = Clips::builtin().expect("the load tester's clips");
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let config = RestreamConfig {
        // The operator's extra CA file: the test CA, on top of Mozilla's roots.
        tls: PushTls::new(Some(&front.ca)).expect("the test CA loads"),
        ..config()
    };
    let restream = Arc::new(Restream::start(config, notices_tx));
    let mut states = States {
        notices,
        seen: Vec::new(),
    };
    restream.control(Control::MainView(Some((VIDEO, VideoCodec::Vp8))));
    restream.control(Control::Voices(vec![VOICE]));
    restream.control(Control::Destinations(vec![
        (1, tls_target(&front, front.trusted_port, "over-tls")),
        (
            2,
            tls_target(&front, front.untrusted_port, "to-an-impostor"),
        ),
    ]));
    let (stop, stopped) = watch::channel(false);
    let feeder = tokio::spawn(feed(restream.clone(), clips, Vec::new(), stopped));

    states
        .wait(1, Duration::from_secs(20), |s| *s == PushState::Live)
        .await;
    // Read back on nginx's own RTMP port: what came through TLS arrived whole.
    let streams = probe(&format!("{}/over-tls", nginx.url("live")), PROBE_TIMEOUT).await;
    assert!(
        streams.streams().contains(&("h264".into(), 480, 270)),
        "H.264 through TLS: {streams:?}\n{}",
        nginx.log()
    );
    assert!(
        streams.streams().iter().any(|(codec, _, _)| codec == "aac"),
        "AAC through TLS: {streams:?}"
    );

    let retrying = states
        .wait(2, Duration::from_secs(20), |s| {
            matches!(s, PushState::Retrying(_))
        })
        .await;
    assert!(
        matches!(&retrying, PushState::Retrying(reason)
            if reason.contains("not trusted") && reason.contains("extra_ca_file")),
        "{retrying:?}"
    );
    let reached_nginx = probe(
        &format!("{}/to-an-impostor", nginx.url("live")),
        Duration::from_secs(3),
    )
    .await;
    assert!(reached_nginx.nothing_published(), "{reached_nginx:?}");

    let _ = stop.send(true);
    let _ = feeder.await;
}

#[tokio::test]
async fn a_destination_on_a_refused_address_is_never_connected_to() {
    // What DNS answers at connect time is checked again: `localhost` and 127.0.0.1 stand for
    // a name that pointed at a public address when it was added and at loopback now.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback listener");
    let port = listener.local_addr().expect("bound").port();
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let config = RestreamConfig {
        outbound: Arc::new(OutboundPolicy::public_only()),
        ..config()
    };
    let restream = Restream::start(config, notices_tx);
    let mut states = States {
        notices,
        seen: Vec::new(),
    };
    let destination = |host: &str| PushTarget {
        host: host.into(),
        port,
        app: "live".into(),
        url: format!("rtmp://{host}:{port}/live"),
        stream_key: "key".into(),
        tls: false,
    };
    restream.control(Control::Destinations(vec![
        (1, destination("127.0.0.1")),
        (2, destination("localhost")),
    ]));
    for id in [1, 2] {
        let retrying = states
            .wait(id, Duration::from_secs(10), |s| {
                matches!(s, PushState::Retrying(_))
            })
            .await;
        assert!(
            matches!(&retrying, PushState::Retrying(reason)
                if reason.contains("not allowed") && reason.contains("a loopback address")),
            "{retrying:?}"
        );
    }
    // Retried (200 ms, then 400 ms) and refused each time: the listener never saw a connection.
    states
        .wait(1, Duration::from_secs(10), |s| *s == PushState::Connecting)
        .await;
    let accepted = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
    assert!(accepted.is_err(), "a connection reached the listener");
}

#[test]
fn an_extra_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("written");
    let error = PushTls::new(Some(&empty)).expect_err("refused");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    let missing = PushTls::new(Some(&dir.path().join("missing.pem"))).expect_err("refused");
    assert!(missing.to_string().contains("cannot read"), "{missing}");
}
