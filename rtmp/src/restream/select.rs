//! Which tracks of a lesson the restream shows: the main view (the screen share when there is
//! one, else the encoder, else the teacher's camera) and the voices to mix. Pure functions of
//! what the room has, so every switch is decided the same way and can be tested.

use super::TrackRef;

/// What a video track shows, as far as choosing the main view goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VideoSource {
    Screen,
    /// An RTMP encoder (OBS) publishing into the lesson.
    Encoder,
    Camera,
}

/// A video track that may become the main view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoCandidate {
    pub track: TrackRef,
    pub source: VideoSource,
    /// Published by a teacher of the lesson.
    pub teacher: bool,
}

/// The main view among `candidates` (in the order their tracks started): a screen share first
/// (a teacher's before anyone else's), then an encoder, then the teacher's camera, then any
/// other camera on stage. Among equals the track that started first stays.
pub fn main_view(candidates: &[VideoCandidate]) -> Option<TrackRef> {
    candidates
        .iter()
        .enumerate()
        .min_by_key(|(order, c)| (rank(c), *order))
        .map(|(_, c)| c.track)
}

fn rank(c: &VideoCandidate) -> u8 {
    match (c.source, c.teacher) {
        (VideoSource::Screen, true) => 0,
        (VideoSource::Screen, false) => 1,
        (VideoSource::Encoder, _) => 2,
        (VideoSource::Camera, true) => 3,
        (VideoSource::Camera, false) => 4,
    }
}

/// Gives each voice a mixer slot, keeping the slots of voices already placed so that a voice
/// joining or leaving does not move the others. Voices beyond the slots wait for a free one.
pub fn assign_slots(slots: &mut [Option<TrackRef>], voices: &[TrackRef]) {
    for slot in slots.iter_mut() {
        if slot.is_some_and(|t| !voices.contains(&t)) {
            *slot = None;
        }
    }
    for voice in voices {
        if slots.contains(&Some(*voice)) {
            continue;
        }
        match slots.iter_mut().find(|s| s.is_none()) {
            Some(free) => *free = Some(*voice),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(track: u64, source: VideoSource, teacher: bool) -> VideoCandidate {
        VideoCandidate {
            track: TrackRef(track),
            source,
            teacher,
        }
    }

    #[test]
    fn the_screen_share_wins_then_the_teachers_camera() {
        use VideoSource::*;
        assert_eq!(main_view(&[]), None);
        let camera = c(1, Camera, true);
        let student = c(2, Camera, false);
        assert_eq!(main_view(&[student, camera]), Some(TrackRef(1)));
        let screen = c(3, Screen, true);
        assert_eq!(main_view(&[student, camera, screen]), Some(TrackRef(3)));
        let encoder = c(4, Encoder, true);
        assert_eq!(main_view(&[camera, encoder]), Some(TrackRef(4)));
        assert_eq!(main_view(&[encoder, screen]), Some(TrackRef(3)));
        // A student's screen share still beats cameras; the first of equals stays.
        assert_eq!(main_view(&[camera, c(5, Screen, false)]), Some(TrackRef(5)));
        assert_eq!(main_view(&[c(6, Camera, true), camera]), Some(TrackRef(6)));
        assert_eq!(main_view(&[student]), Some(TrackRef(2)));
    }

    #[test]
    fn voices_keep_their_slots() {
        let t = TrackRef;
        let mut slots = [None; 3];
        assign_slots(&mut slots, &[t(1)]);
        assert_eq!(slots, [Some(t(1)), None, None]);
        assign_slots(&mut slots, &[t(1), t(2), t(3), t(4)]);
        assert_eq!(slots, [Some(t(1)), Some(t(2)), Some(t(3))]);
        assign_slots(&mut slots, &[t(2), t(3), t(4)]);
        assert_eq!(slots, [Some(t(4)), Some(t(2)), Some(t(3))]);
        assign_slots(&mut slots, &[]);
        assert_eq!(slots, [None, None, None]);
    }
}
