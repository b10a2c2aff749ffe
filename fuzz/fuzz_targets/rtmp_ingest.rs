//! The RTMP/AMF/FLV path of the ingest: an `IngestSession` fed by a well-behaved encoder
//! (a real handshake, connect and publish through rml_rtmp's client) that then sends what the
//! fuzzer chooses: FLV video and audio tags of any content (AVC/AAC sequence headers, pictures,
//! other codecs, Enhanced RTMP), raw bytes into the chunk stream, transcoder output (Annex-B,
//! Ogg), time passing. With `raw_start`, the fuzzer's bytes replace the handshake itself.
//!
//! Invariants: no panic; nothing comes out after the session closed; every RTP payload is
//! non-empty and fits the payload limit; the key is checked at most once.

#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use classroom_codec::annexb::AnnexBSplitter;
use classroom_codec::ogg::OggOpusReader;
use classroom_codec::rtp::DEFAULT_MAX_PAYLOAD;
use classroom_protocol::LessonId;
use classroom_rtmp::media::SourceMedia;
use classroom_rtmp::{IngestEvent, IngestSession, SessionConfig, SessionOutput};
use libfuzzer_sys::fuzz_target;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;

const MAX_STEPS: usize = 64;

#[derive(Debug, Arbitrary)]
enum Step {
    /// An FLV video tag body, sent as a valid RTMP video message.
    Video {
        tag: Vec<u8>,
        ms: u16,
    },
    /// An FLV audio tag body, sent as a valid RTMP audio message.
    Audio {
        tag: Vec<u8>,
        ms: u16,
    },
    /// A well-formed AVC picture: `keyframe`, a composition time, these NAL units.
    Picture {
        keyframe: bool,
        composition_ms: i16,
        nal_units: Vec<Vec<u8>>,
        ms: u16,
    },
    /// Bytes straight into the chunk stream.
    Raw(Vec<u8>),
    /// What the video transcoder wrote (Annex-B).
    TranscodedVideo(Vec<u8>),
    /// What the audio transcoder wrote (Ogg/Opus).
    TranscodedAudio(Vec<u8>),
    Advance {
        ms: u16,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    transcoder_available: bool,
    accept_key: bool,
    raw_start: Option<Vec<u8>>,
    steps: Vec<Step>,
}

/// Drives one session and checks what comes out.
struct Harness {
    session: IngestSession,
    now: Instant,
    accept_key: bool,
    keys_checked: u32,
    closed: bool,
    annexb: AnnexBSplitter,
    ogg: OggOpusReader,
}

impl Harness {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.session.handle_input(self.now, bytes);
        self.drain()
    }

    /// Drains the session's outputs; returns what it sent to the encoder.
    fn drain(&mut self) -> Vec<u8> {
        let mut sent = Vec::new();
        while let Some(output) = self.session.poll_output() {
            assert!(!self.closed, "output after the close: {output:?}");
            match output {
                SessionOutput::Send(bytes) => sent.extend_from_slice(&bytes),
                SessionOutput::CheckKey(_) => {
                    self.keys_checked += 1;
                    assert_eq!(self.keys_checked, 1, "a second key check");
                    if self.accept_key {
                        self.session
                            .publish_accepted(LessonId(1), SourceMedia::new(7), false);
                    } else {
                        self.session
                            .publish_refused(Some(LessonId(1)), "refused".into());
                    }
                }
                SessionOutput::Event(IngestEvent::Packet { packet, .. }) => {
                    assert!(!packet.payload.is_empty(), "an empty RTP payload");
                    assert!(
                        packet.payload.len() <= DEFAULT_MAX_PAYLOAD,
                        "an RTP payload of {} bytes",
                        packet.payload.len()
                    );
                }
                SessionOutput::Close { .. } => self.closed = true,
                SessionOutput::Event(_)
                | SessionOutput::VideoToTranscoder(_)
                | SessionOutput::AudioToTranscoder(_) => {}
            }
        }
        sent
    }
}

fn outbound(results: impl IntoIterator<Item = ClientSessionResult>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for result in results {
        if let ClientSessionResult::OutboundResponse(packet) = result {
            bytes.extend_from_slice(&packet.bytes);
        }
    }
    bytes
}

/// A real handshake, connect and publish; the client session for the media after it.
fn publish(h: &mut Harness) -> Option<ClientSession> {
    let mut handshake = Handshake::new(PeerType::Client);
    let p0_p1 = handshake.generate_outbound_p0_and_p1().ok()?;
    let reply = h.feed(&p0_p1);
    let HandshakeProcessResult::Completed { response_bytes, .. } =
        handshake.process_bytes(&reply).ok()?
    else {
        return None;
    };
    let mut reply = h.feed(&response_bytes);
    let (mut client, _) = ClientSession::new(ClientSessionConfig::new()).ok()?;
    let connect = outbound([client.request_connection("live".into()).ok()?]);
    reply.extend(h.feed(&connect));
    let mut publish_requested = false;
    for _ in 0..4 {
        let mut next = outbound(client.handle_input(&reply).ok()?);
        if !publish_requested
            && let Ok(request) = client.request_publishing("key".into(), PublishRequestType::Live)
        {
            publish_requested = true;
            next.extend(outbound([request]));
        }
        reply = h.feed(&next);
    }
    Some(client)
}

fn picture(keyframe: bool, composition_ms: i16, nal_units: &[Vec<u8>]) -> Vec<u8> {
    let cts = i32::from(composition_ms).to_be_bytes();
    let mut tag = vec![
        if keyframe { 0x17 } else { 0x27 },
        1,
        cts[1],
        cts[2],
        cts[3],
    ];
    for nal in nal_units {
        tag.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        tag.extend_from_slice(nal);
    }
    tag
}

fuzz_target!(|input: Input| {
    let config = SessionConfig {
        transcoder_available: input.transcoder_available,
        ..SessionConfig::default()
    };
    let now = Instant::now();
    let mut h = Harness {
        session: IngestSession::new(config, now),
        now,
        accept_key: input.accept_key,
        keys_checked: 0,
        closed: false,
        annexb: AnnexBSplitter::default(),
        ogg: OggOpusReader::default(),
    };
    let mut client = match &input.raw_start {
        Some(bytes) => {
            h.feed(bytes);
            None
        }
        None => publish(&mut h),
    };
    for step in input.steps.into_iter().take(MAX_STEPS) {
        match step {
            Step::Video { tag, ms } => {
                if let Some(c) = client.as_mut()
                    && let Ok(r) =
                        c.publish_video_data(Bytes::from(tag), RtmpTimestamp::new(ms.into()), false)
                {
                    h.feed(&outbound([r]));
                }
            }
            Step::Audio { tag, ms } => {
                if let Some(c) = client.as_mut()
                    && let Ok(r) =
                        c.publish_audio_data(Bytes::from(tag), RtmpTimestamp::new(ms.into()), false)
                {
                    h.feed(&outbound([r]));
                }
            }
            Step::Picture {
                keyframe,
                composition_ms,
                nal_units,
                ms,
            } => {
                let tag = picture(keyframe, composition_ms, &nal_units);
                if let Some(c) = client.as_mut()
                    && let Ok(r) =
                        c.publish_video_data(Bytes::from(tag), RtmpTimestamp::new(ms.into()), false)
                {
                    h.feed(&outbound([r]));
                }
            }
            Step::Raw(bytes) => {
                h.feed(&bytes);
            }
            // The driver stops feeding transcoder output once the session closed.
            Step::TranscodedVideo(bytes) if !h.closed => {
                if let Ok(nals) = h.annexb.push(&bytes) {
                    for nal in nals {
                        h.session.handle_transcoded_nal(nal);
                    }
                    h.drain();
                }
            }
            Step::TranscodedAudio(bytes) if !h.closed => {
                if let Ok(packets) = h.ogg.push(&bytes) {
                    for packet in packets {
                        h.session.handle_opus(packet);
                    }
                    h.drain();
                }
            }
            Step::TranscodedVideo(_) | Step::TranscodedAudio(_) => {}
            Step::Advance { ms } => {
                h.now += Duration::from_millis(u64::from(ms) * 50);
                if h.session.poll_timeout() <= h.now {
                    h.session.handle_timeout(h.now);
                }
                h.drain();
            }
        }
    }
});
