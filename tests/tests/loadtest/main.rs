//! The load tester against a real `classroomd` started by the test: short lecture and churn
//! runs over real WebSockets and real WebRTC on 127.0.0.1. Checks what the tool reports, not
//! how fast the machine is: the JSON report parses, every student received audio and video,
//! nothing was lost on loopback, and every join time was measured.
//!
//! The teacher sends three simulcast layers (180p, 360p, 720p), as a browser does; the SFU
//! picks one per student from its bandwidth estimate, so the report has per-layer bitrates.
//! A lecture also runs over ICE-TCP.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use classroom_loadtest::link::Transport;
use classroom_loadtest::{RunConfig, Scenario, Target, run};
use classroom_protocol::UserRole;
use classroom_tests::{Backend, TestServer};
use serde_json::Value;

const ADMIN_EMAIL: &str = "admin@school.edu";
/// The password `TestServer::user` gives every account.
const ADMIN_PASSWORD: &str = "correct horse battery";

async fn server_with_admin() -> TestServer {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    server.user(UserRole::Admin, ADMIN_EMAIL, "Ada Admin").await;
    server
}

fn config(server: &TestServer, scenario: Scenario, students: usize, secs: u64) -> RunConfig {
    RunConfig {
        server: server.base.clone(),
        target: Target::Classroom,
        admin_email: ADMIN_EMAIL.into(),
        admin_password: ADMIN_PASSWORD.into(),
        scenario,
        students,
        duration: Duration::from_secs(secs),
        join_rate: 20.0,
        layers: 3,
        stage: 0,
        churn_per_second: 1.0,
        ramp_step: 1,
        max_loss_percent: 1.0,
        max_latency_p99_ms: 50.0,
        server_pid: None,
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        transport: Transport::Udp,
        progress: false,
    }
}

/// Runs the scenario and returns its report as the JSON the tool prints.
async fn report_json(config: RunConfig) -> Value {
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let report = run(config, stopped).await.expect("the run completes");
    eprintln!("{}", report.table());
    let text = serde_json::to_string_pretty(&report).expect("the report serializes");
    serde_json::from_str(&text).expect("the report's JSON parses")
}

fn students(report: &Value) -> Vec<&Value> {
    report["participants"]
        .as_array()
        .expect("a participant list")
        .iter()
        .filter(|p| p["role"] == "student")
        .collect()
}

/// Every student joined, received audio and video, and has both join times.
fn assert_every_student_received_media(report: &Value) {
    for student in students(report) {
        let name = &student["name"];
        assert!(student["error"].is_null(), "{name}: {}", student["error"]);
        assert_eq!(student["joined"], true, "{name} joined");
        assert!(
            student["streams"].as_u64() >= Some(2),
            "{name} got audio and video"
        );
        assert!(
            student["packets_received"].as_u64() > Some(0),
            "{name} got media"
        );
        for join in ["join_first_packet_ms", "join_first_keyframe_ms"] {
            let ms = student[join].as_f64().unwrap_or(-1.0);
            assert!(ms > 0.0, "{name}: {join} = {}", student[join]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lecture_reaches_every_student_without_loss() {
    let server = server_with_admin().await;
    let report = report_json(config(&server, Scenario::Lecture, 4, 3)).await;

    assert_eq!(report["scenario"], "lecture");
    assert_eq!(
        report["participants_joined"], 5,
        "the teacher and four students"
    );
    assert_eq!(students(&report).len(), 4);
    assert_every_student_received_media(&report);
    for student in students(&report) {
        // One video stream, whichever layer it carries: the SFU picks one of the three.
        assert_eq!(
            student["streams"], 2,
            "{}: audio and one video",
            student["name"]
        );
    }
    let totals = &report["totals"];
    assert!(totals["packets_expected"].as_u64() > Some(0));
    assert_eq!(totals["packets_lost"], 0, "no loss on loopback: {totals}");
    for p in ["p50", "p95", "p99"] {
        assert!(report["join_first_packet_ms"][p].as_f64() > Some(0.0));
        assert!(report["join_first_keyframe_ms"][p].as_f64() > Some(0.0));
        assert!(
            report["latency_ms"][p].as_f64() >= Some(0.0),
            "latency {p} measured"
        );
    }
    assert_eq!(report["layers"], 3);
    let bitrates = report["bitrate_kbps"]
        .as_object()
        .expect("bitrates by layer");
    assert!(bitrates["audio"].as_f64() > Some(0.0), "{bitrates:?}");
    let video_layers: Vec<&String> = bitrates
        .keys()
        .filter(|k| ["180p", "360p", "720p"].contains(&k.as_str()))
        .collect();
    assert!(!video_layers.is_empty(), "a simulcast layer: {bitrates:?}");
    for layer in video_layers {
        assert!(
            bitrates[layer].as_f64() > Some(0.0),
            "{layer}: {bitrates:?}"
        );
    }
    let window = &report["window"];
    assert!(window["packets_received"].as_u64() > Some(0), "{window}");
    assert!(window["server_cpu_seconds"].as_f64().is_some(), "{window}");
    let skipped = server
        .metric("classroom_media_simulcast_total{event=\"layer_skipped\"}")
        .await
        .unwrap_or(0.0);
    assert!(
        skipped > 0.0,
        "the SFU forwards one layer per student, not all three"
    );
    // The test server listens in this process, so /proc of this process is what is read.
    assert_eq!(report["server"]["source"], "proc");
    assert!(report["server"]["cpu_seconds"].as_f64() > Some(0.0));
    assert!(report["generator"]["cpu_seconds"].as_f64() > Some(0.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lecture_over_ice_tcp_reaches_every_student_without_loss() {
    let server = server_with_admin().await;
    let report = report_json(RunConfig {
        transport: Transport::Tcp,
        ..config(&server, Scenario::Lecture, 3, 3)
    })
    .await;

    assert_eq!(report["transport"], "tcp");
    assert_eq!(report["participants_joined"], 4);
    assert_every_student_received_media(&report);
    assert_eq!(report["totals"]["packets_lost"], 0, "{}", report["totals"]);
    // Every participant's media went over its own TCP connection, none over UDP.
    // (The SFU's counters reach /metrics once a second.)
    let accepted = "classroom_media_tcp_connections_total{outcome=\"accepted\"}";
    if let Err(metrics) = server
        .metrics_until(Duration::from_secs(10), |m| m.value(accepted) == Some(4.0))
        .await
    {
        panic!("not 4 {accepted} in:\n{}", metrics.text);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_churning_through_a_lecture_each_receive_media() {
    let server = server_with_admin().await;
    let report = report_json(config(&server, Scenario::Churn, 3, 5)).await;

    assert_eq!(report["scenario"], "churn");
    let students = students(&report);
    assert!(
        students.len() >= 5,
        "students left and others joined: {} sessions",
        students.len()
    );
    assert_every_student_received_media(&report);
    assert_eq!(report["totals"]["packets_lost"], 0, "{}", report["totals"]);
    server.stop().await;
}

/// The ingest scenario: an encoder's H.264 + AAC over RTMP reaches every student, each of its
/// pictures is matched at the students by content and timed, and the server's CPU is read.
/// (What the figures are is for `bench/ingest` to print, not for a test to assert.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_scenario_times_an_encoders_pictures_at_the_students() {
    let server = server_with_admin().await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let report = classroom_loadtest::ingest::run(config(&server, Scenario::Lecture, 2, 3), stopped)
        .await
        .expect("the run completes");
    eprintln!("{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.pictures_sent >= 60, "{report:?}");
    // Every picture sent in the window reaches both students, give or take the window's edges.
    assert!(
        report.pictures_matched + 4 >= 2 * report.pictures_sent,
        "{} of {} × 2",
        report.pictures_matched,
        report.pictures_sent
    );
    assert!(report.added_latency_ms.p50.is_some());
    assert!(
        report.server_cpu_percent.is_some(),
        "the server's CPU is read"
    );
    assert!(
        report.transcoder_cpu_percent.is_some(),
        "the AAC → Opus transcoder runs as the server's child"
    );
}

/// Twelve students in three breakout rooms (a short run of the 30-in-6 scenario CI can
/// afford): everyone moves in, hears the teacher speaking to every room, one moves between
/// rooms, everyone comes back; each hears all of its room mates and nobody else, and every
/// move's gap is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakout_rooms_split_the_class_and_bring_it_back_with_each_room_apart() {
    let server = server_with_admin().await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let report =
        classroom_loadtest::breakout::run(config(&server, Scenario::Lecture, 12, 2), 3, stopped)
            .await
            .expect("the run completes");
    eprintln!("{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.ready, 12, "every student heard the teacher first");
    assert_eq!(report.gap_into.moves, 12, "every student moved in");
    assert_eq!(report.gap_between.moves, 1, "one moved between rooms");
    assert_eq!(report.gap_back.moves, 12, "every student came back");
    assert_eq!(
        report.heard_all_mates, 12,
        "each heard all of its room mates"
    );
    assert_eq!(report.foreign_tracks, 0, "nobody heard another room");
    assert_eq!(
        report.heard_teacher_voice, 12,
        "the teacher's voice to every room reached every student in every room"
    );
    assert_eq!(report.voice_ended, 12, "and ended for each when it stopped");
    assert_eq!(report.back_with_teacher, 12);
    let text = serde_json::to_string(&report).expect("the report serializes");
    let json: Value = serde_json::from_str(&text).expect("the report's JSON parses");
    assert!(json["gap_into"]["max_ms"].as_f64() > Some(0.0), "{json}");
}

/// Ten students follow the teacher's board for a few seconds: every stroke and every page
/// turn reaches every student, and the delays are measured (the figures are printed, not
/// judged: this machine is shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_scenario_times_every_stroke_and_page_turn_to_every_student() {
    let server = server_with_admin().await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let report = classroom_loadtest::board::run(config(&server, Scenario::Lecture, 10, 3), stopped)
        .await
        .expect("the run completes");
    eprintln!("{}", report.table());
    assert_eq!(report.students_listening, 10);
    assert!(
        report.strokes_sent >= 5 && report.page_turns_sent >= 1,
        "{report:?}"
    );
    assert_eq!((report.strokes_missed, report.page_turns_missed), (0, 0));
    assert!(report.stroke_ms.p95.is_some() && report.page_turn_ms.p95.is_some());
}
