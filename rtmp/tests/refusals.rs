//! Everything that must be refused or closed, while a healthy ffmpeg stream on the same
//! listener keeps flowing: wrong key, duplicate publisher, HEVC / Enhanced RTMP, garbage bytes,
//! truncated and absurd chunks, silent connections, a flood of connections.
#![allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.

mod common;

use std::time::Duration;

use classroom_rtmp::{IngestEvent, TrackKind};
use common::client::Publisher;
use common::{Ingest, clip, push};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HEALTHY: i64 = 1;
const OTHER: i64 = 2;
const MAX_CONNECTIONS: usize = 12;

fn refusals(events: &[IngestEvent]) -> Vec<(Option<i64>, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Refused { lesson, reason } => Some((lesson.map(|l| l.0), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_is_refused_while_a_healthy_stream_keeps_flowing() {
    let ingest = Ingest::start(&[("healthy", HEALTHY), ("other", OTHER)], |c| {
        c.max_connections = MAX_CONNECTIONS;
        c.session.publish_timeout = Duration::from_secs(1);
    })
    .await;
    let mut healthy = push(&clip(0), &ingest.url("healthy"), true);
    ingest
        .wait_for("the healthy stream", |e| {
            e.iter()
                .any(|e| matches!(e, IngestEvent::Publish { lesson, .. } if lesson.0 == HEALTHY))
        })
        .await;
    let flowing = || ingest.packets(HEALTHY, TrackKind::Video).len();

    // A wrong key: ffmpeg is refused at publish.
    let status = push(&clip(0), &ingest.url("wrong"), false)
        .wait()
        .await
        .unwrap();
    assert!(!status.success());
    assert!(
        refusals(&ingest.events())
            .iter()
            .any(|(l, r)| l.is_none() && r.contains("stream key"))
    );

    // A second publisher on a key in use.
    let status = push(&clip(0), &ingest.url("healthy"), false)
        .wait()
        .await
        .unwrap();
    assert!(!status.success());
    assert!(
        refusals(&ingest.events())
            .iter()
            .any(|(l, r)| *l == Some(HEALTHY) && r.contains("already streaming"))
    );

    // HEVC (legacy codec id 12) and Enhanced RTMP (ex-header, FourCC hvc1 / av01).
    for (tag, words) in [
        (&b"\x1c\x00\x00\x00\x00\x01"[..], "HEVC"),
        (&b"\x90hvc1\x01\x02"[..], "hvc1"),
        (&b"\x90av01\x01\x02"[..], "av01"),
    ] {
        let mut publisher = Publisher::publish(ingest.addr, "other").await.unwrap();
        publisher.video(tag, 0).await;
        assert!(
            Publisher::closed_by_server(&mut publisher.stream).await,
            "{words}"
        );
        ingest
            .wait_for(words, |e| {
                refusals(e)
                    .iter()
                    .any(|(l, r)| *l == Some(OTHER) && r.contains(words))
            })
            .await;
    }

    // Garbage instead of a handshake.
    let mut garbage = TcpStream::connect(ingest.addr).await.unwrap();
    garbage.write_all(&[0x47; 4000]).await.unwrap();
    assert!(Publisher::closed_by_server(&mut garbage).await);

    // After a valid handshake: an absurd chunk size, a message header in the middle of a
    // message, a chunk on a stream that never had a header, an oversized command.
    let abuse: [&[u8]; 4] = [
        &[
            0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
        ],
        &[
            0x03, 0, 0, 0, 0, 1, 0, 0x14, 0, 0, 0, 0, 0x05, 0x03, 0, 0, 0, 0, 0, 1, 0x14, 0, 0, 0,
            0,
        ],
        &[0x45, 0, 0, 0, 0, 0, 9, 9],
        &[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0],
    ];
    for bytes in abuse {
        let mut stream = Publisher::handshake(ingest.addr).await;
        stream.write_all(bytes).await.unwrap();
        assert!(Publisher::closed_by_server(&mut stream).await, "{bytes:?}");
    }

    // A truncated chunk, then silence: closed by the publish timeout.
    let mut truncated = Publisher::handshake(ingest.addr).await;
    truncated
        .write_all(&[0x03, 0, 0, 0, 0, 0, 200, 0x14, 0, 0, 0, 0, 2, 0])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(Publisher::closed_by_server(&mut truncated).await);

    // A flood: connections beyond the limit are closed at once.
    let mut flood = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 8 {
        flood.push(TcpStream::connect(ingest.addr).await.unwrap());
    }
    let mut closed_at_once = 0;
    for stream in flood.iter_mut().rev().take(8) {
        closed_at_once += usize::from(Publisher::closed_by_server(stream).await);
    }
    assert!(
        closed_at_once >= 7,
        "{closed_at_once} of 8 extra connections closed"
    );
    drop(flood);

    // Through all of it, the healthy stream went on and was never unpublished.
    let before = flowing();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(flowing() > before + 30, "the healthy stream stalled");
    assert!(
        !ingest
            .events()
            .iter()
            .any(|e| matches!(e, IngestEvent::Unpublish { lesson } if lesson.0 == HEALTHY))
    );
    healthy.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_that_drops_and_reconnects_resumes_the_same_source() {
    let ingest = Ingest::start(&[("k", HEALTHY)], |c| {
        c.reconnect_grace = Duration::from_secs(3);
    })
    .await;
    let mut first = push(&clip(0), &ingest.url("k"), true);
    ingest
        .wait_for("video", |e| {
            common::packets(e, HEALTHY, TrackKind::Video).len() > 100
        })
        .await;
    // SIGKILL: the TCP connection drops without a goodbye, like a network failure.
    first.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ingest.packets(HEALTHY, TrackKind::Video);
    assert!(
        !ingest
            .events()
            .iter()
            .any(|e| matches!(e, IngestEvent::Unpublish { .. }))
    );

    let mut second = push(&clip(0), &ingest.url("k"), true);
    ingest
        .wait_for("resumed publish", |e| {
            e.iter()
                .any(|e| matches!(e, IngestEvent::Publish { resumed: true, .. }))
        })
        .await;
    ingest
        .wait_for("more video", |e| {
            common::packets(e, HEALTHY, TrackKind::Video).len() > before.len() + 30
        })
        .await;
    let after = ingest.packets(HEALTHY, TrackKind::Video);
    let (last, next) = (&after[before.len() - 1], &after[before.len()]);
    assert_eq!(next.sequence_number, last.sequence_number.wrapping_add(1));
    let gap = next.timestamp.wrapping_sub(last.timestamp);
    assert!(gap > 0 && gap < 90_000, "timestamps jump by {gap}");
    assert!(next.keyframe, "the resumed stream starts at a keyframe");

    // Dropped for longer than the grace period: unpublished.
    second.kill().await.unwrap();
    ingest
        .wait_for("unpublish after the grace period", |e| {
            e.iter().any(|e| matches!(e, IngestEvent::Unpublish { .. }))
        })
        .await;
}
