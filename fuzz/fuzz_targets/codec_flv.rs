//! FLV (`classroom_codec::flv`): a stream of tags in pieces, tag bodies as video and audio
//! messages, the AVC and AAC configurations, and the tagger fed what the parsers found.
//!
//! Invariants: no panic; the stream reader never holds more than a tag's bound; a sequence
//! header the tagger writes is one the parser takes.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use classroom_codec::annexb;
use classroom_codec::flv::{
    self, AudioTag, AvcTagger, FlvReader, VideoTag, parse_audio_tag, parse_video_tag,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    stream: Vec<u8>,
    piece: u8,
    bodies: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let mut reader = FlvReader::new();
    for piece in input.stream.chunks(usize::from(input.piece).max(1)) {
        match reader.push(piece) {
            Ok(tags) => {
                for tag in tags {
                    assert!(!tag.body.is_empty());
                    let _ = (tag.is_keyframe(), tag.is_sequence_header());
                }
            }
            Err(_) => break,
        }
        assert!(reader.pending() <= flv::MAX_TAG_BYTES + 15 + piece.len());
    }
    let mut tagger = AvcTagger::new();
    let mut length_size = 4;
    for body in input.bodies {
        let body = Bytes::from(body);
        match parse_video_tag(&body) {
            Ok(VideoTag::SequenceHeader(config)) => {
                length_size = config.nal_length_size;
                let _ = config.profile_level_id();
            }
            Ok(VideoTag::Frame(frame)) => {
                if let Ok(units) = annexb::split_avcc(&frame.data, length_size) {
                    for tag in tagger.frame(&units, frame.keyframe) {
                        if flv::is_sequence_header(flv::TagKind::Video, &tag) {
                            let parsed = parse_video_tag(&tag).expect("our own header");
                            assert!(matches!(parsed, VideoTag::SequenceHeader(_)));
                        }
                    }
                }
            }
            Ok(VideoTag::Ignored) | Err(_) => {}
        }
        if let Ok(AudioTag::SequenceHeader(config)) = parse_audio_tag(&body) {
            for len in [0, 1, 0x1ff8, 0x1ff9, usize::MAX] {
                let _ = config.adts_header(len);
            }
        }
    }
});
