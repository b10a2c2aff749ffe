//! IVF (`classroom_codec::ivf`): whole files of any content.
//!
//! Invariants: no panic; every frame lies within the file; a file written from the frames
//! read reads back the same.

#![no_main]

use classroom_codec::ivf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|file: &[u8]| {
    let Ok((header, frames)) = ivf::parse(file) else {
        return;
    };
    let mut again = header.to_bytes().to_vec();
    for frame in &frames {
        assert!(frame.data.len() <= file.len());
        again.extend_from_slice(&ivf::frame(frame.data, frame.timestamp).expect("fits"));
    }
    let (header_again, frames_again) = ivf::parse(&again).expect("our own file");
    assert_eq!(header_again.fourcc, header.fourcc);
    assert_eq!(frames_again, frames);
});
