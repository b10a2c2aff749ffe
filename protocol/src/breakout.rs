//! Breakout rooms on the wire: how a moderator splits the class ([`BreakoutMode`],
//! [`BreakoutRequest`]), what everyone in the lesson sees of the rooms ([`BreakoutStatus`]),
//! and where a participant is moved ([`BreakoutPlace`]). The signaling messages that carry
//! them are in [`crate::signal`] (`open_breakouts`, `move_to_breakout`, `breakouts`, `moved`,
//! ...); docs/protocol.md ("Breakout rooms") tells the whole exchange.

use serde::{Deserialize, Serialize};

use crate::signal::ParticipantId;

/// The most breakout rooms one lesson opens at once.
pub const MAX_BREAKOUT_ROOMS: u32 = 50;
/// The longest timer of a round of breakout rooms (four hours), in seconds.
pub const MAX_BREAKOUT_SECONDS: u32 = 4 * 3600;

/// How students are placed when the rooms open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakoutMode {
    /// Students are dealt at random, the rooms differing by at most one student.
    Random,
    /// A moderator's explicit assignment (`assignment`); students not named stay in the main
    /// room until moved.
    ByHand,
    /// Students stay in the main room and pick a room themselves (`choose_breakout`).
    Choose,
}

/// `open_breakouts`: what a moderator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutRequest {
    /// How many rooms (1 to [`MAX_BREAKOUT_ROOMS`]).
    pub rooms: u32,
    pub mode: BreakoutMode,
    /// `by_hand` only: for each room (from 0), the students of the main room who go there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignment: Vec<Vec<ParticipantId>>,
    /// The rooms close by themselves this many seconds after they open (60 to
    /// [`MAX_BREAKOUT_SECONDS`]); without it they stay open until a moderator closes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    /// With a timer: everyone is warned this many seconds before the end (default 60; 0: no
    /// warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_seconds: Option<u32>,
    /// Record every room of the round (each becomes a replay of its own, linked to the
    /// lesson); `record_breakout` turns one room's recording on or off later. Needs the
    /// `record` grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
}

/// One breakout room as the lesson sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutRoomInfo {
    /// From 0; the room's name in every message.
    pub index: u32,
    /// The room's signaling name (its own room in the registry).
    pub room: String,
    /// Participants of the main room who are in this room now (students placed there and
    /// moderators visiting), by their id in the main room.
    pub members: Vec<ParticipantId>,
    /// The room is recorded (`open_breakouts` with `record`, or `record_breakout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recording: bool,
}

/// The breakout rooms of a lesson, as everyone in it (in the main room or away in a breakout
/// room) sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutStatus {
    /// Increasing within the lesson: each `open_breakouts` opens a new round of rooms.
    pub round: u32,
    pub mode: BreakoutMode,
    pub rooms: Vec<BreakoutRoomInfo>,
    /// Seconds until the rooms close by themselves, when they have a timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<u32>,
    /// Moderators speaking to every breakout room now (`speak_to_breakouts`), by their id in
    /// the main room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voice: Vec<ParticipantId>,
}

/// Where `moved` takes a participant: a breakout room, or (`None` on the wire: `null`) back to
/// the main room of the lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutPlace {
    pub index: u32,
    pub room: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_timer_or_assignment_reads_from_the_few_fields_it_has() {
        let request: BreakoutRequest = serde_json::from_str(r#"{"rooms":3,"mode":"random"}"#)
            .expect("a request with rooms and mode");
        assert_eq!(request.rooms, 3);
        assert_eq!(request.mode, BreakoutMode::Random);
        assert!(request.assignment.is_empty());
        assert_eq!(request.duration_seconds, None);
        assert!(!request.record, "rooms are not recorded unless asked");
    }

    #[test]
    fn an_unknown_mode_is_refused() {
        let parsed = serde_json::from_str::<BreakoutRequest>(r#"{"rooms":3,"mode":"magic"}"#);
        assert!(parsed.is_err());
    }
}
