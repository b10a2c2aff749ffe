//! Arbitrary bytes on an ICE-TCP connection, in arbitrary read sizes, through the RFC 4571
//! frame reader the driver uses. It must never panic, must agree with a plain reference
//! parser of the whole stream (same frames, the same error at the same place), and must never
//! need more room than one frame. Each frame then goes to a core with no peers, as the driver
//! would hand it over from a connection nobody has verified.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use arbitrary::Unstructured;
use classroom_protocol::tcp_framing::{FrameError, FrameReader, MAX_FRAME, frame_header};
use classroom_media::{Sfu, SfuConfig};
use libfuzzer_sys::fuzz_target;

const SFU_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 443);
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 50123);

/// The frames of a whole stream, and the error that stops it, if any.
fn reference(mut bytes: &[u8]) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        if len > MAX_FRAME {
            return (frames, Some(FrameError::TooLong(len)));
        }
        if bytes.len() < 2 + len {
            break;
        }
        if len > 0 {
            frames.push(bytes[2..2 + len].to_vec());
        }
        bytes = &bytes[2 + len..];
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Unstructured::new(data);
    let split: u8 = input.arbitrary().unwrap_or(0);
    let stream = input.take_rest();
    let (expected, expected_error) = reference(stream);

    let mut sfu = Sfu::new(
        Instant::now(),
        SfuConfig {
            tcp_candidate: Some(SFU_ADDR),
            ..SfuConfig::new(SFU_ADDR)
        },
    )
    .expect("a valid configuration");
    let mut reader = FrameReader::new();
    let mut frames = Vec::new();
    let mut error = None;
    let mut rest = stream;
    // Read sizes vary with the split byte and the position, from 1 byte up.
    let mut step = 0usize;
    'reading: while !rest.is_empty() {
        step += 1;
        let want = 1 + (usize::from(split) * step) % 3000;
        let spare = reader.spare();
        assert!(spare.len() >= MAX_FRAME, "room for a whole frame");
        let n = want.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        reader.filled(n);
        rest = &rest[n..];
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= MAX_FRAME);
                    assert!(frame_header(frame).is_some());
                    sfu.handle_tcp_frame(Instant::now(), CLIENT, SFU_ADDR, frame);
                    frames.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'reading;
                }
            }
        }
    }
    assert_eq!(frames, expected);
    assert_eq!(error, expected_error);
    assert_eq!(sfu.stats().peers, 0);
});
