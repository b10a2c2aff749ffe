//! A quick, deterministic cousin of the `rtmp_ingest` fuzz target that runs with every
//! `cargo test`: a valid publish (handshake, connect, publish, sequence headers, pictures, AAC)
//! recorded once, then thousands of mutated copies (flipped, truncated, duplicated, inserted
//! bytes) fed in random pieces to fresh sessions. None may panic. `MUTATION_SEED=N` explores
//! other mutations.
#![allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.

use std::time::Instant;

use bytes::Bytes;
use classroom_protocol::LessonId;
use classroom_rtmp::media::SourceMedia;
use classroom_rtmp::{IngestEvent, IngestSession, SessionConfig, SessionOutput};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;

const AVC_SEQUENCE_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 6, 0x67, 0x42, 0xc0, 0x1e, 0xab, 0xcd, 1,
    0, 4, 0x68, 0xce, 0x3c, 0x80,
];
const AAC_SEQUENCE_HEADER: &[u8] = &[0xaf, 0, 0x11, 0x90];

/// Runs a session over the recorded steps, each cut into pieces (an encoder waits for the
/// answer to its publish before it sends media, so steps are not merged); returns how many
/// video packets came out.
fn run(steps: &[Vec<u8>], mut cut: impl FnMut() -> usize) -> usize {
    let now = Instant::now();
    let config = SessionConfig {
        transcoder_available: false,
        ..SessionConfig::default()
    };
    let mut session = IngestSession::new(config, now);
    let mut packets = 0;
    for step in steps {
        let mut rest = &step[..];
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(cut().clamp(1, rest.len()));
            rest = tail;
            session.handle_input(now, piece);
            while let Some(output) = session.poll_output() {
                match output {
                    SessionOutput::CheckKey(_) => {
                        session.publish_accepted(LessonId(1), SourceMedia::new(1), false)
                    }
                    SessionOutput::Event(IngestEvent::Packet { .. }) => packets += 1,
                    _ => {}
                }
            }
        }
    }
    packets
}

/// Feeds one live session and returns what it answered (the key is accepted).
fn step(session: &mut IngestSession, bytes: &[u8], sent: &mut Vec<Vec<u8>>) -> Vec<u8> {
    sent.push(bytes.to_vec());
    session.handle_input(Instant::now(), bytes);
    let mut reply = Vec::new();
    while let Some(output) = session.poll_output() {
        match output {
            SessionOutput::Send(b) => reply.extend_from_slice(&b),
            SessionOutput::CheckKey(_) => {
                session.publish_accepted(LessonId(1), SourceMedia::new(1), false)
            }
            _ => {}
        }
    }
    reply
}

fn outbound(results: Vec<ClientSessionResult>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            bytes.extend_from_slice(&p.bytes);
        }
    }
    bytes
}

/// The bytes of a complete, valid publish, recorded against a real session.
fn recorded_publish() -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let mut server = IngestSession::new(SessionConfig::default(), Instant::now());
    let mut handshake = Handshake::new(PeerType::Client);
    let p0_p1 = handshake.generate_outbound_p0_and_p1().unwrap();
    let reply = step(&mut server, &p0_p1, &mut sent);
    let HandshakeProcessResult::Completed { response_bytes, .. } =
        handshake.process_bytes(&reply).unwrap()
    else {
        panic!("handshake incomplete");
    };
    // The server's first messages (chunk size, window, bandwidth) follow the handshake.
    let mut reply = step(&mut server, &response_bytes, &mut sent);
    let (mut client, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    let connect = outbound(vec![client.request_connection("live".into()).unwrap()]);
    reply.extend(step(&mut server, &connect, &mut sent));
    let mut publish_requested = false;
    for _ in 0..4 {
        let mut next = outbound(client.handle_input(&reply).unwrap());
        if !publish_requested
            && let Ok(r) = client.request_publishing("key".into(), PublishRequestType::Live)
        {
            publish_requested = true;
            next.extend(outbound(vec![r]));
        }
        reply = step(&mut server, &next, &mut sent);
    }
    let mut media = vec![
        client.publish_video_data(
            Bytes::from_static(AVC_SEQUENCE_HEADER),
            RtmpTimestamp::new(0),
            false,
        ),
        client.publish_audio_data(
            Bytes::from_static(AAC_SEQUENCE_HEADER),
            RtmpTimestamp::new(0),
            false,
        ),
    ];
    for i in 0..10u32 {
        let mut picture = vec![if i % 5 == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        let nal: Vec<u8> = std::iter::once(if i % 5 == 0 { 0x65 } else { 0x41 })
            .chain((0..1500 + i * 100).map(|b| b as u8))
            .collect();
        picture.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        picture.extend_from_slice(&nal);
        media.push(client.publish_video_data(
            Bytes::from(picture),
            RtmpTimestamp::new(i * 33),
            false,
        ));
        media.push(client.publish_audio_data(
            Bytes::from_static(&[0xaf, 1, 0x21, 0x10]),
            RtmpTimestamp::new(i * 21),
            false,
        ));
    }
    let media = outbound(media.into_iter().map(|r| r.unwrap()).collect());
    step(&mut server, &media, &mut sent);
    sent
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn the_valid_publish_produces_video() {
    let stream = recorded_publish();
    let mut rng = Rng(7);
    let packets = run(&stream, || 1 + rng.below(700));
    // 10 pictures of up to 2.5 kB at 1200 bytes per packet.
    assert!(packets >= 20, "{packets} packets");
}

#[test]
fn mutated_publishes_never_panic() {
    let stream = recorded_publish();
    let mut rng = Rng(std::env::var("MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15));
    let mut still_published = 0;
    for _ in 0..20_000 {
        let mut steps = stream.clone();
        for _ in 0..1 + rng.below(4) {
            // Mostly after the handshake (steps 0 and 1), where the chunk stream is.
            let index = if rng.below(10) == 0 {
                rng.below(2)
            } else {
                2 + rng.below(steps.len() - 2)
            };
            let bytes = &mut steps[index];
            if bytes.is_empty() {
                continue;
            }
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next() as u8,
                2 => bytes.truncate(at),
                3 => {
                    let len = rng.below(64).min(bytes.len() - at);
                    let copy = bytes[at..at + len].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => {
                    let junk: Vec<u8> = (0..rng.below(32)).map(|_| rng.next() as u8).collect();
                    bytes.splice(at..at, junk);
                }
            }
        }
        let packets = run(&steps, || 1 + rng.below(2000));
        still_published += usize::from(packets > 0);
    }
    // Mutations late in the stream leave earlier pictures intact: the harness reaches media.
    assert!(
        still_published > 100,
        "{still_published} mutated runs produced video"
    );
}
