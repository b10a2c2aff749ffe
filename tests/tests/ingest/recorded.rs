//! A lesson streamed from an encoder (OBS) is recorded like any other: the recorder
//! subscribes to the encoder's H.264 and Opus (transcoded from AAC) in process, and the replay
//! is made of them.

use std::time::Instant;

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_from_an_encoder_is_recorded_into_a_replay() {
    let class = Class::new(|config| config.recorder.height = 360).await;
    class
        .school
        .teacher
        .patch(
            &format!("/api/v1/courses/{}", class.school.course_id),
            json!({"record_by_default": true}),
        )
        .await
        .expect(200);
    let mut teacher = class.teacher().await;
    let mut encoder = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    tokio::time::sleep(Duration::from_secs(4)).await;
    teacher.ok(ClientMessage::EndLesson).await;
    tokio::time::timeout(WAIT, encoder.wait())
        .await
        .expect("ffmpeg is disconnected")
        .expect("ffmpeg ran");

    let deadline = Instant::now() + Duration::from_secs(120);
    let replay = loop {
        let reply = class
            .school
            .teacher
            .get(&format!("/api/v1/lessons/{}/replays", class.lesson))
            .await;
        let items = reply.expect(200)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(replay) = items.iter().find(|r| r["state"] != "processing") {
            break replay.clone();
        }
        assert!(Instant::now() < deadline, "still processing: {items:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(replay["state"], "ready", "{replay}");
    assert!(replay["duration_ms"].as_i64() > Some(3000), "{replay}");
    let mp4 = class
        .server
        .data_dir()
        .join("replays")
        .join(replay["id"].as_i64().expect("an id").to_string())
        .join("replay.mp4");
    // The encoder's picture, not the black canvas: the test pattern is bright.
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("movie={},signalstats", mp4.display()))
        .args([
            "-show_entries",
            "frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ])
        .output()
        .expect("ffprobe runs");
    let luma: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let pictured = luma.iter().filter(|y| **y > 40.0).count();
    assert!(
        pictured * 2 > luma.len(),
        "{pictured} of {} frames show the encoder's picture",
        luma.len()
    );
    // And its sound: the 440 Hz tone is never silent for long.
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(&mp4)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr);
    let mean_db: f64 = log
        .lines()
        .find_map(|l| {
            l.split("mean_volume: ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("a mean volume");
    assert!(mean_db > -40.0, "the replay is silent: {mean_db} dB");
}
