//! Arbitrary bytes into the server's real parser of client text messages
//! (`classroom_signaling::session::parse_client_text`). It must never panic, and what it
//! accepts or refuses must be consistent with the size limit and the protocol.

#![no_main]

use classroom_protocol::ErrorCode;
use classroom_signaling::session::parse_client_text;
use libfuzzer_sys::fuzz_target;

/// The default `SignalingConfig::max_message_bytes` (16 KiB), and a small limit.
const LIMITS: [usize; 2] = [16 * 1024, 64];

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8; non-UTF-8 input is made UTF-8 lossily so that every
    // input reaches the parser.
    let text = String::from_utf8_lossy(data);
    for max_bytes in LIMITS {
        match parse_client_text(&text, max_bytes) {
            Ok(envelope) => {
                assert!(text.len() <= max_bytes, "accepted an oversized message");
                // What was accepted encodes and parses back to the same message.
                let json = serde_json::to_string(&envelope).expect("an envelope encodes");
                let again = parse_client_text(&json, usize::MAX)
                    .unwrap_or_else(|r| panic!("re-encoded message refused: {r:?}: {json}"));
                assert_eq!(again, envelope);
            }
            Err(refused) => {
                // Only the parser's own codes: nothing else can be wrong before the room.
                assert!(
                    matches!(
                        refused.code,
                        ErrorCode::MessageTooLarge
                            | ErrorCode::MalformedJson
                            | ErrorCode::UnsupportedVersion
                            | ErrorCode::InvalidMessage
                            | ErrorCode::UnknownType
                    ),
                    "{refused:?}"
                );
                if text.len() > max_bytes {
                    assert_eq!(refused.code, ErrorCode::MessageTooLarge);
                }
            }
        }
    }
});
