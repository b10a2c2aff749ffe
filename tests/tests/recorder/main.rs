//! The recorder end to end: a teacher's publisher (the load tester's str0m client) sends real
//! VP8 and Opus from a clip with a flash and a beep at known times; the lesson is recorded
//! (the course records by default), ended, and made into a replay by real ffmpeg. Then what
//! users see: the replay in the library, its files, who may fetch them. Also pauses, a
//! `kill -9` during a recording, failing jobs and their retry, and the job queue on both
//! databases.

mod breakout;
mod by_hand;
mod media;
mod nodes;
mod slow_disk;
mod webhook;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_loadtest::api::Api;
use classroom_loadtest::clip::Clips;
use classroom_loadtest::link::Transport;
use classroom_loadtest::participant::{self, Plan, Record, Role, Server};
use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{ClientMessage, RecordingState, ServerMessage};
use classroom_protocol::{ErrorCode, LessonId};
use classroom_tests::child::ChildServer;
use classroom_tests::school::{School, join_token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, Client, TestServer};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The password `TestServer::user` gives every account.
const PASSWORD: &str = "correct horse battery";

fn small(config: &mut classroomd::Config) {
    // A small picture keeps ffmpeg quick on a shared 2-core machine.
    config.recorder.height = 360;
}

/// The course records by default; Otto, a second teacher, runs the room.
async fn recorded_course(school: &School) {
    school
        .teacher
        .patch(
            &format!("/api/v1/courses/{}", school.course_id),
            json!({"record_by_default": true}),
        )
        .await
        .expect(200);
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/teachers", school.course_id),
            json!({"user_id": school.other_teacher_id}),
        )
        .await
        .expect(201);
}

/// The teacher's publisher: the clip's VP8 and Opus, until the returned sender says stop.
async fn publish(base: &str, lesson: i64) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, task, _) = peer(base, lesson, "tess@school.edu", Role::Teacher, true, 0).await;
    (stop, task)
}

/// A str0m participant (the load tester's): sends the clip's VP8 and Opus when `sending`,
/// receives `receive` tracks of each kind; until the returned sender says stop. Returns once
/// its peer connection is up.
async fn peer(
    base: &str,
    lesson: i64,
    email: &str,
    role: Role,
    sending: bool,
    receive: usize,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    participant::SharedRecord,
) {
    let (video, audio) = media::clip();
    let clips = Clips::from_files(&video, &audio).expect("the clip parses");
    let api = Api::new(base)
        .login(email, PASSWORD)
        .await
        .expect("signs in");
    let plan = Plan {
        name: email.into(),
        role,
        server: Server::Classroom { api, lesson },
        transport: Transport::Udp,
        sending: Sending {
            audio: sending,
            video_layers: usize::from(sending),
        },
        receive,
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        clips,
        stage_requests: None,
        ask_stage: None,
        h264: None,
    };
    let record = Arc::new(std::sync::Mutex::new(Record::new(&plan)));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(participant::run(plan, record.clone(), stopped));
    // Media flows once the peer is connected.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connected = {
            let record = participant::lock(&record);
            if let Some(error) = &record.error {
                panic!("{email} failed: {error}");
            }
            record
                .peer
                .as_ref()
                .is_some_and(|p| p.lock().map(|p| p.connected_at.is_some()).unwrap_or(false))
        };
        if connected {
            break;
        }
        assert!(Instant::now() < deadline, "{email} connects");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (stop, task, record)
}

/// Otto joins the lesson and waits for the course's default to start the recording.
async fn control(base: &str, school: &School, lesson: i64) -> (Ws, Instant) {
    let token = join_token(&school.other_teacher, lesson).await;
    let (mut otto, joined) = Ws::join(base, &token).await;
    if !matches!(
        joined,
        ServerMessage::Joined {
            recording: RecordingState::Recording,
            ..
        }
    ) {
        otto.recv_where(|m| {
            matches!(
                m,
                ServerMessage::Recording {
                    state: RecordingState::Recording
                }
            )
        })
        .await;
    }
    (otto, Instant::now())
}

/// The lesson's replays as `client` sees them, once one is no longer processing.
async fn settled_replay(client: &Client, lesson: i64, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let reply = client
            .get(&format!("/api/v1/lessons/{lesson}/replays"))
            .await;
        let items = reply.expect(200)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(replay) = items.iter().find(|r| r["state"] != "processing") {
            return replay.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the replay is still processing: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn replay_dir(server: &TestServer, replay: &Value) -> PathBuf {
    server
        .data_dir()
        .join("replays")
        .join(replay["id"].as_i64().expect("an id").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_lesson_becomes_a_replay_in_sync_and_only_members_fetch_it() {
    let server = TestServer::start(Backend::Sqlite, small)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    recorded_course(&school).await;
    let lesson = school.lesson("Recorded lesson").await;

    let (mut otto, started) = control(&server.base, &school, lesson).await;
    let (stop, publisher) = publish(&server.base, lesson).await;
    otto.ok(ClientMessage::Chat {
        text: "Welcome <everyone> & hi".into(),
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    otto.send(ClientMessage::EndLesson).await;
    let live = started.elapsed();
    let _ = stop.send(true);
    let _ = publisher.await;

    let replay = settled_replay(&school.teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(replay["state"], "ready", "{replay}");
    let duration_ms = replay["duration_ms"].as_i64().expect("a duration");
    let live_ms = live.as_millis() as i64;
    assert!(
        (duration_ms - live_ms).abs() <= 500,
        "replay {duration_ms} ms, live {live_ms} ms"
    );
    assert!(replay["size_bytes"].as_i64() > Some(10_000), "{replay}");
    assert_eq!(replay["chapters"][0]["title"], "Lesson", "{replay}");

    let dir = replay_dir(&server, &replay);
    let mp4 = dir.join("replay.mp4");
    assert_eq!(media::codecs(&mp4), ["h264", "aac"]);
    // ffprobe lists an HLS program's streams twice (program and playlist).
    let mut hls = media::codecs(&dir.join("index.m3u8"));
    hls.dedup_by(|a, b| a == b);
    hls.truncate(2);
    assert_eq!(hls, ["h264", "aac"]);
    let probed = media::duration(&mp4);
    assert!(
        (probed * 1000.0 - live_ms as f64).abs() <= 500.0,
        "the MP4 lasts {probed} s, live {live_ms} ms"
    );
    let flash = media::first_flash(&mp4).expect("the flash is in the replay");
    let beep = media::first_beep(&mp4).expect("the beep is in the replay");
    eprintln!(
        "flash at {flash:.3} s, beep at {beep:.3} s, replay {duration_ms} ms, live {live_ms} ms"
    );
    assert!(
        (flash - beep).abs() <= 0.1,
        "flash at {flash:.3} s, beep at {beep:.3} s"
    );
    let playlist = std::fs::read_to_string(dir.join("index.m3u8")).expect("a playlist");
    assert!(playlist.contains("#EXT-X-ENDLIST") && playlist.contains("seg-00000.ts"));

    // The chat is a timed track.
    let chat: Value =
        serde_json::from_slice(&std::fs::read(dir.join("chat.json")).expect("chat.json"))
            .expect("JSON");
    assert_eq!(chat[0]["text"], "Welcome <everyone> & hi");
    let vtt = std::fs::read_to_string(dir.join("chat.vtt")).expect("chat.vtt");
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("Welcome &lt;everyone&gt; &amp; hi"));

    // The room's events are in the recording, with their times: who was there, who joined,
    // the chat.
    let events: String = std::fs::read_dir(server.data_dir().join("recordings"))
        .expect("the recordings")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())
        .collect();
    for wanted in [
        "\"type\":\"participants\"",
        "\"type\":\"participant_joined\"",
        "Tess Teacher",
        "Welcome <everyone> & hi",
        "\"type\":\"track_started\"",
        "\"type\":\"stopped\"",
    ] {
        assert!(events.contains(wanted), "{wanted} in the events: {events}");
    }

    check_access(&server, &school, lesson, &replay).await;
    server.stop().await;
}

/// Members fetch the files through their links; nobody else does; no path leaves the folder.
async fn check_access(server: &TestServer, school: &School, lesson: i64, teacher_view: &Value) {
    let id = teacher_view["id"].as_i64().expect("an id");
    let listed = school
        .student
        .get(&format!("/api/v1/lessons/{lesson}/replays"))
        .await;
    let view = listed.expect(200)["items"][0].clone();
    let url = view["url"].as_str().expect("a playlist link").to_string();
    let base = url.trim_end_matches("index.m3u8").to_string();
    let anyone = server.client();
    let playlist = anyone.get(&url).await;
    assert_eq!(playlist.status, 200);
    assert_eq!(
        playlist.headers["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let segment = anyone.get(&format!("{base}seg-00000.ts")).await;
    assert_eq!(segment.status, 200);
    assert_eq!(segment.headers["content-type"], "video/mp2t");
    let one = school.student.get(&format!("/api/v1/replays/{id}")).await;
    assert!(one.expect(200)["download_url"].as_str().is_some());

    // Another course's student and no token see nothing.
    school
        .outsider
        .get(&format!("/api/v1/lessons/{lesson}/replays"))
        .await
        .expect_error(403, "not_a_member");
    school
        .outsider
        .get(&format!("/api/v1/replays/{id}"))
        .await
        .expect_error(403, "not_a_member");
    anyone
        .get(&format!("/api/v1/courses/{}/replays", school.course_id))
        .await
        .expect(401);
    let forged = format!("/api/v1/replays/{id}/files/not-a-token/index.m3u8");
    assert_eq!(anyone.get(&forged).await.status, 401);
    let other_replay = base.replacen(
        &format!("/replays/{id}/"),
        &format!("/replays/{}/", id + 1),
        1,
    );
    assert_eq!(
        anyone
            .get(&format!("{other_replay}index.m3u8"))
            .await
            .status,
        404
    );

    // Traversal: encoded slashes and dots, absolute paths, files that are not the replay's.
    for bad in [
        "..%2F..%2Fjwt_secret",
        "%2E%2E%2F%2E%2E%2Fclassroom.db",
        "%2Fetc%2Fpasswd",
        "..",
        "work",
        "..%5C..%5Cjwt_secret",
        "chapters.json%00.ts",
    ] {
        let reply = anyone.get(&format!("{base}{bad}")).await;
        assert_eq!(reply.status, 404, "{bad}: {}", reply.text);
    }
    // Literal `..` segments, sent as they are (HTTP clients would resolve them).
    let path = format!("{base}../../../../jwt_secret");
    let raw = raw_get(&server.base, &path).await;
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");

    // A byte range of the download (seeking).
    let mp4 = format!("{base}replay.mp4");
    let range = reqwest::Client::new()
        .get(format!("{}{mp4}", server.base))
        .header("range", "bytes=0-99")
        .send()
        .await
        .expect("answers");
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.expect("a body").len(), 100);

    // Access is checked again on every file request: a link outlives neither a removal from
    // the course nor a disabled account.
    let otto_view = school
        .other_teacher
        .get(&format!("/api/v1/replays/{id}"))
        .await;
    let otto_url = otto_view.expect(200)["url"]
        .as_str()
        .expect("a playlist link")
        .to_string();
    assert_eq!(anyone.get(&otto_url).await.status, 200);
    school
        .teacher
        .delete(&format!(
            "/api/v1/courses/{}/enrollments/{}",
            school.course_id, school.student_id
        ))
        .await
        .expect(204);
    anyone.get(&url).await.expect_error(403, "not_a_member");
    anyone
        .get(&format!("{base}seg-00000.ts"))
        .await
        .expect_error(403, "not_a_member");
    school
        .admin
        .patch(
            &format!("/api/v1/users/{}", school.other_teacher_id),
            json!({"disabled": true}),
        )
        .await
        .expect(200);
    anyone
        .get(&otto_url)
        .await
        .expect_error(401, "account_disabled");
}

/// A GET of `path` exactly as written, over a plain TCP connection.
async fn raw_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_leaves_the_paused_part_out_of_one_replay() {
    let server = TestServer::start(Backend::Sqlite, small)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    recorded_course(&school).await;
    let lesson = school.lesson("Paused lesson").await;

    let (mut otto, started) = control(&server.base, &school, lesson).await;
    let (stop, publisher) = publish(&server.base, lesson).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Students cannot pause; teachers can, and everyone sees it.
    let sam_token = join_token(&school.student, lesson).await;
    let (mut sam, _) = Ws::join(&server.base, &sam_token).await;
    assert_eq!(
        sam.refused(ClientMessage::PauseRecording).await,
        ErrorCode::MissingGrant
    );
    otto.ok(ClientMessage::PauseRecording).await;
    let paused = Instant::now();
    sam.recv_where(|m| {
        matches!(
            m,
            ServerMessage::Recording {
                state: RecordingState::Paused
            }
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    otto.ok(ClientMessage::ResumeRecording).await;
    let paused_for = paused.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    otto.send(ClientMessage::EndLesson).await;
    let live = started.elapsed();
    let _ = stop.send(true);
    let _ = publisher.await;

    let replay = settled_replay(&school.teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(replay["state"], "ready", "{replay}");
    let all = school
        .teacher
        .get(&format!("/api/v1/lessons/{lesson}/replays"))
        .await;
    assert_eq!(
        all.expect(200)["items"].as_array().map(Vec::len),
        Some(1),
        "one replay"
    );
    let expected = live.saturating_sub(paused_for).as_millis() as i64;
    let duration_ms = replay["duration_ms"].as_i64().expect("a duration");
    assert!(
        (duration_ms - expected).abs() <= 500,
        "replay {duration_ms} ms, live {} ms less {} ms paused",
        live.as_millis(),
        paused_for.as_millis()
    );
    let probed = media::duration(&replay_dir(&server, &replay).join("replay.mp4"));
    assert!(
        (probed * 1000.0 - expected as f64).abs() <= 500.0,
        "{probed} s"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_by_kill_9_is_processed_on_restart() {
    let mut server = TestServer::start(Backend::Sqlite, small)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    recorded_course(&school).await;
    let lesson = school.lesson("Crashed lesson").await;
    if let Some(running) = server.server.take() {
        running.stop().await.expect("stops");
    }

    let mut child = ChildServer::start(env!("CARGO_BIN_EXE_test-server"), &server.data_dir()).await;
    let base = child.base.clone();
    let school = School {
        teacher: school.teacher.at(&base),
        other_teacher: school.other_teacher.at(&base),
        ..school
    };

    let (_otto, started) = control(&base, &school, lesson).await;
    let (stop, publisher) = publish(&base, lesson).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill_9();
    let recorded = started.elapsed();
    let _ = stop.send(true);
    let _ = publisher.await;

    server.restart().await;
    let teacher = school.teacher.at(&server.base);
    let replay = settled_replay(&teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(replay["state"], "ready", "{replay}");
    let duration_ms = replay["duration_ms"].as_i64().expect("a duration");
    // At most the last second is lost; nothing is invented.
    let recorded_ms = recorded.as_millis() as i64;
    assert!(
        duration_ms >= recorded_ms - 1500 && duration_ms <= recorded_ms + 200,
        "replay {duration_ms} ms of {recorded_ms} ms recorded"
    );
    assert_eq!(
        media::codecs(&replay_dir(&server, &replay).join("replay.mp4")),
        ["h264", "aac"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_say_why_the_queue_goes_on_and_a_retry_after_the_fix_succeeds() {
    let mut server = TestServer::start(Backend::Sqlite, |c| {
        small(c);
        c.recorder.ffmpeg = PathBuf::from("/nonexistent/ffmpeg");
        c.recorder.max_attempts = 1;
    })
    .await
    .expect("a SQLite server");
    let school = School::new(&server).await;
    recorded_course(&school).await;
    let lesson = school.lesson("Lesson without ffmpeg").await;
    let (mut otto, _) = control(&server.base, &school, lesson).await;
    let (stop, publisher) = publish(&server.base, lesson).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    otto.ok(ClientMessage::StopRecording).await;
    otto.send(ClientMessage::EndLesson).await;
    let _ = stop.send(true);
    let _ = publisher.await;
    let failed = settled_replay(&school.teacher, lesson, Duration::from_secs(60)).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot run ffmpeg")),
        "{failed}"
    );

    // The fix: ffmpeg is there after a restart.
    server.config.recorder.ffmpeg = PathBuf::from("ffmpeg");
    server.restart().await;
    let school = School {
        admin: school.admin.at(&server.base),
        teacher: school.teacher.at(&server.base),
        ..school
    };
    let (admin, teacher) = (school.admin.clone(), school.teacher.clone());

    // A corrupt recording queued meanwhile fails with its reason; the queue goes on.
    let broken_lesson = school.lesson("Broken recording").await;
    let folder = format!("lesson-{broken_lesson}-1");
    let dir = server.data_dir().join("recordings").join(&folder);
    std::fs::create_dir_all(&dir).expect("a folder");
    std::fs::write(
        dir.join("events.jsonl"),
        format!(
            "{{\"t_ms\":0,\"type\":\"started\",\"lesson\":{broken_lesson},\"room\":\"lesson-{broken_lesson}\",\"started_at_ms\":0}}\n\
             {{\"t_ms\":2000,\"type\":\"stopped\"}}\n"
        ),
    )
    .expect("events");
    std::fs::write(dir.join("track-1.rtp"), b"CLRTRK1\n\xff\xff\xff\xffgarbage").expect("a track");
    server
        .store()
        .enqueue_recording(
            LessonId(broken_lesson),
            &folder,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .expect("queued");

    let jobs = admin.get("/api/v1/recording-jobs?state=failed").await;
    let job = jobs.expect(200)["items"]
        .as_array()
        .and_then(|items| items.iter().find(|j| j["lesson_id"] == lesson).cloned())
        .expect("the failed job is listed");
    assert!(
        job["error"].as_str().is_some_and(|e| e.contains("ffmpeg")),
        "{job}"
    );
    let retry = format!("/api/v1/recording-jobs/{}/retry", job["id"]);
    teacher.post_empty(&retry).await.expect(403);
    admin.post_empty(&retry).await.expect(200);
    admin
        .post_empty(&retry)
        .await
        .expect_error(409, "job_not_failed");

    let broken = settled_replay(&teacher, broken_lesson, Duration::from_secs(60)).await;
    assert_eq!(broken["state"], "failed", "{broken}");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreadable")),
        "{broken}"
    );
    let fixed = settled_replay(&teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(fixed["state"], "ready", "{fixed}");
    assert!(fixed["error"].is_null(), "{fixed}");
    server.stop().await;
}

/// The queue itself, on SQLite and on PostgreSQL: each job is claimed once however many
/// workers ask at the same time; failures back off, then stay failed; a retry queues again.
async fn queue_claims_each_job_once(backend: Backend) {
    let Some(server) = TestServer::start(backend, |c| c.recorder.workers = 0).await else {
        return;
    };
    let school = School::new(&server).await;
    let store = server.store();
    let now = time::OffsetDateTime::now_utc();
    let mut lessons = Vec::new();
    for i in 0..3 {
        let lesson = school.lesson(&format!("Lesson {i}")).await;
        store
            .enqueue_recording(LessonId(lesson), &format!("lesson-{lesson}-1"), now)
            .await
            .expect("queued");
        lessons.push(lesson);
    }
    let again = store
        .enqueue_recording(
            LessonId(lessons[0]),
            &format!("lesson-{}-1", lessons[0]),
            now,
        )
        .await
        .expect("idempotent");
    assert_eq!(again.attempts, 0);
    let lease = time::Duration::minutes(2);
    let claims = futures_util::future::join_all((0..5).map(|w| {
        let store = store.clone();
        async move {
            store
                .claim_recording_job(&format!("worker{w}"), now, lease)
                .await
                .expect("claims")
        }
    }))
    .await;
    let mut claimed: Vec<i64> = claims.iter().flatten().map(|j| j.id).collect();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 3, "{claims:?}");
    assert_eq!(claims.iter().filter(|c| c.is_none()).count(), 2);

    let policy = classroom_courses::store::RetryPolicy {
        max_attempts: 2,
        backoff: time::Duration::seconds(30),
    };
    let job = claimed[0];
    let owner = claims
        .iter()
        .flatten()
        .find(|j| j.id == job)
        .and_then(|j| j.worker.clone())
        .expect("the claim names its worker");
    let refused = store
        .fail_recording_job(job, "not mine", "ffmpeg failed: boom", policy, now)
        .await
        .expect_err("only the claiming worker reports");
    assert!(
        refused.to_string().contains("took this job over"),
        "{refused}"
    );
    let retried = store
        .fail_recording_job(job, &owner, "ffmpeg failed: boom", policy, now)
        .await
        .expect("fails");
    assert_eq!(retried.state.as_str(), "queued");
    // Stored in milliseconds.
    assert!(retried.run_after > now + time::Duration::milliseconds(29_999));
    assert!(
        store
            .claim_recording_job("w", now, lease)
            .await
            .expect("claims")
            .is_none(),
        "not before the backoff"
    );
    let later = now + time::Duration::seconds(31);
    let second = store
        .claim_recording_job("w", later, lease)
        .await
        .expect("claims")
        .expect("due again");
    assert_eq!((second.id, second.attempts), (job, 2));
    let failed = store
        .fail_recording_job(job, "w", "ffmpeg failed: boom", policy, later)
        .await
        .expect("fails");
    assert_eq!(failed.state.as_str(), "failed");
    let replay = store
        .replay(failed.replay_id.expect("a replay job"))
        .await
        .expect("the replay");
    assert_eq!(
        (replay.state.as_str(), replay.error.as_deref()),
        ("failed", Some("ffmpeg failed: boom"))
    );
    // A claim whose worker died is taken over after the lease.
    let stale = claimed[1];
    let taken = store
        .claim_recording_job("w2", now + time::Duration::minutes(3), lease)
        .await
        .expect("claims")
        .expect("the stale claim");
    assert!(taken.id == stale || taken.id == claimed[2]);
    // The slow worker whose claim lapsed cannot renew it, nor overwrite the new one's work.
    let slow = claims
        .iter()
        .flatten()
        .find(|j| j.id == taken.id)
        .and_then(|j| j.worker.clone())
        .expect("the first claim's worker");
    let late = now + time::Duration::minutes(4);
    assert!(
        store
            .renew_recording_job(taken.id, &slow, late)
            .await
            .is_err()
    );
    assert!(
        store
            .complete_recording_job(taken.id, &slow, 1, 1, &[], late)
            .await
            .is_err()
    );
    store
        .renew_recording_job(taken.id, "w2", late)
        .await
        .expect("the new owner renews");
    let still = store.recording_job(taken.id).await.expect("the job");
    assert_eq!(
        (still.state.as_str(), still.worker.as_deref()),
        ("running", Some("w2"))
    );
    let retried = store
        .retry_recording_job(job, later)
        .await
        .expect("retried");
    assert_eq!((retried.state.as_str(), retried.attempts), ("queued", 0));
    let counts = store.recording_job_counts().await.expect("counts");
    assert!(
        counts
            .iter()
            .any(|(s, n)| s.as_str() == "queued" && *n >= 1),
        "{counts:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_queue_claims_each_job_once_on_sqlite() {
    queue_claims_each_job_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_queue_claims_each_job_once_on_postgres() {
    queue_claims_each_job_once(Backend::Postgres).await;
}
