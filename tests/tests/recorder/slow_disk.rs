//! A disk that stalls under a live recording: the recordings' folder is a real ext4
//! filesystem (an image on a loop device) frozen with `fsfreeze`, so every write to it blocks
//! as on a dead or saturated disk, while a teacher publishes and a student receives over str0m.
//! The student keeps receiving every packet without a pause; the recording loses packets,
//! counted in the metrics, marked degraded and noted in its events file; after the thaw it goes
//! on and becomes a replay. Needs root (loop devices, mount, fsfreeze): skipped with the reason
//! otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A small ext4 filesystem mounted over a folder; frozen on demand; thawed and unmounted
/// when dropped (also when the test fails).
struct StallingDisk {
    mountpoint: PathBuf,
    frozen: bool,
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl StallingDisk {
    fn mount(image_dir: &Path, mountpoint: &Path) -> Result<StallingDisk, String> {
        let is_root = std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        if !is_root {
            return Err("not root (mounting a loop device and fsfreeze need it)".into());
        }
        let image = image_dir.join("disk.ext4");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .map_err(|e| format!("cannot make the disk image: {e}"))?;
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
        )?;
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mountpoint.as_os_str(),
            ],
        )?;
        Ok(StallingDisk {
            mountpoint: mountpoint.to_path_buf(),
            frozen: false,
        })
    }

    /// From now on every write to the filesystem blocks.
    fn freeze(&mut self) {
        run("fsfreeze", &["-f".as_ref(), self.mountpoint.as_os_str()]).expect("fsfreeze");
        self.frozen = true;
    }

    fn thaw(&mut self) {
        if self.frozen {
            let _ = run("fsfreeze", &["-u".as_ref(), self.mountpoint.as_os_str()]);
            self.frozen = false;
        }
    }
}

impl Drop for StallingDisk {
    fn drop(&mut self) {
        self.thaw();
        if run("umount", &[self.mountpoint.as_os_str()]).is_err() {
            // Something still holds a file open (a failed test): detach it lazily.
            let _ = run("umount", &["-l".as_ref(), self.mountpoint.as_os_str()]);
        }
    }
}

/// Packets the teacher sent, and those the student received (unique, by sequence number).
fn counts(teacher: &participant::SharedRecord, student: &participant::SharedRecord) -> (u64, u64) {
    let sent = participant::lock(teacher)
        .peer
        .as_ref()
        .map_or(0, |p| p.lock().map(|p| p.packets_sent).unwrap_or(0));
    (sent, received(student).0)
}

/// The student's unique packets received, and those missing by sequence number.
fn received(student: &participant::SharedRecord) -> (u64, u64) {
    let record = participant::lock(student);
    let Some(peer) = record.peer.as_ref() else {
        return (0, 0);
    };
    let stats = peer.lock().unwrap_or_else(|e| e.into_inner());
    stats.streams.values().fold((0, 0), |(got, lost), s| {
        (
            got + s.loss.received(),
            lost + s.loss.expected().saturating_sub(s.loss.received()),
        )
    })
}

async fn metric(server: &TestServer, name: &str) -> f64 {
    server.metric(name).await.unwrap_or(0.0)
}

const DROPPED: &str = "classroom_recorder_packets_dropped_total";
const DEGRADED: &str = "classroom_recordings_degraded";
const WRITTEN: &str = "classroom_recorder_bytes_written_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_costs_the_recording_packets_never_the_live_lesson() {
    let image_dir = tempfile::tempdir().expect("a folder");
    let server = TestServer::start(Backend::Sqlite, |c| {
        small(c);
        // About a second of this lesson's media, so that the loss starts soon.
        c.recorder.queue_packets = 100;
    })
    .await
    .expect("a SQLite server");
    let recordings = server.data_dir().join("recordings");
    let mut disk = match StallingDisk::mount(image_dir.path(), &recordings) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!(
                "SKIPPED a_stalled_disk_costs_the_recording_packets_never_the_live_lesson: {reason}"
            );
            server.stop().await;
            return;
        }
    };
    let school = School::new(&server).await;
    recorded_course(&school).await;
    let lesson = school.lesson("Lesson on a stalling disk").await;
    let (mut otto, _) = control(&server.base, &school, lesson).await;
    let (stop_sam, sam_task, sam) = peer(
        &server.base,
        lesson,
        "sam@school.edu",
        Role::Student,
        false,
        1,
    )
    .await;
    let (stop_tess, tess_task, tess) = peer(
        &server.base,
        lesson,
        "tess@school.edu",
        Role::Teacher,
        true,
        0,
    )
    .await;

    // A healthy disk first: the recording writes, loses nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let written = metric(&server, WRITTEN).await;
    assert!(
        written > 10_000.0,
        "the recording writes: {written} bytes; {:?}",
        std::fs::read_dir(&recordings).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    assert_eq!(metric(&server, DROPPED).await, 0.0);
    assert!(
        received(&sam).0 > 100,
        "the student receives: {:?}",
        received(&sam)
    );

    let (sent_before, received_before) = counts(&tess, &sam);
    disk.freeze();
    let frozen_at = Instant::now();
    // The student's packets keep coming while the disk is stalled: never a pause.
    let mut longest_pause = Duration::ZERO;
    let mut last_progress = (Instant::now(), received(&sam).0);
    let mut written_stalled = None;
    let mut dropped_seen = false;
    while frozen_at.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        let got = received(&sam).0;
        if got > last_progress.1 {
            last_progress = (now, got);
        }
        longest_pause = longest_pause.max(now - last_progress.0);
        if frozen_at.elapsed() > Duration::from_secs(1) && written_stalled.is_none() {
            written_stalled = Some(metric(&server, WRITTEN).await);
        }
        if !dropped_seen && metric(&server, DROPPED).await > 0.0 {
            dropped_seen = true;
            eprintln!(
                "the recorder's loss shows in the metrics {} ms after the disk stalled",
                frozen_at.elapsed().as_millis()
            );
            assert_eq!(metric(&server, DEGRADED).await, 1.0, "marked degraded");
        }
    }
    let dropped = metric(&server, DROPPED).await;
    // The writer really was blocked by the disk: it wrote nothing since.
    assert_eq!(
        Some(metric(&server, WRITTEN).await),
        written_stalled,
        "the frozen disk took no write"
    );
    disk.thaw();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (sent_after, received_after) = counts(&tess, &sam);
    let (sent, got) = (sent_after - sent_before, received_after - received_before);
    eprintln!(
        "disk stalled 6 s: teacher sent {sent}, student received {got}, longest pause {} ms; \
         the recording lost {dropped} packets",
        longest_pause.as_millis()
    );
    assert!(
        dropped_seen && dropped > 100.0,
        "the recording lost packets: {dropped}"
    );
    assert!(
        longest_pause < Duration::from_millis(500),
        "the live lesson paused for {longest_pause:?}"
    );
    // Every packet: the same count (give or take those in flight at the two samples)...
    assert!(
        got.abs_diff(sent) <= 10,
        "sent {sent}, received {got} while the disk was stalled"
    );
    // ...and no sequence number missing.
    assert_eq!(
        received(&sam).1,
        0,
        "packets lost on the way to the student"
    );

    // The burst ends: degraded no more, and the recording goes on to a replay.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, DEGRADED).await != 0.0 {
        assert!(Instant::now() < deadline, "still degraded after the thaw");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    otto.send(ClientMessage::EndLesson).await;
    let _ = stop_tess.send(true);
    let _ = stop_sam.send(true);
    let _ = tess_task.await;
    let _ = sam_task.await;
    let replay = settled_replay(&school.teacher, lesson, Duration::from_secs(120)).await;
    assert_eq!(replay["state"], "ready", "{replay}");
    let events: String = std::fs::read_dir(&recordings)
        .expect("the recordings")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())
        .collect();
    assert!(
        events.contains("\"type\":\"dropped\""),
        "the events file notes the loss: {events}"
    );
    drop(disk);
    server.stop().await;
}
