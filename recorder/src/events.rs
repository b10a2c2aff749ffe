//! The events file of a recording (`events.jsonl`): one JSON object per line, appended as
//! things happen, each with `t_ms`, the milliseconds since the recording started. It holds
//! what the replay needs besides media: pauses, which track belongs to whom, the chat, stage
//! changes, hands and attendance. A reader skips a cut-off last line (a crash's tail).

use std::collections::BTreeMap;

use classroom_protocol::signal::{ParticipantId, ParticipantInfo, ServerMessage};
use classroom_protocol::{LessonId, RoomName, TrackSource};
use serde::{Deserialize, Serialize};

/// One line of the events file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedEvent {
    pub t_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first line.
    Started {
        lesson: LessonId,
        room: RoomName,
        /// Wall-clock start, milliseconds since the Unix epoch.
        started_at_ms: i64,
    },
    Paused,
    Resumed,
    /// The last line of a recording that ended normally. `recovered`: written on the next
    /// start after a crash.
    Stopped {
        #[serde(default)]
        recovered: bool,
    },
    /// A track is recorded from now on (its file is `track-<track>.rtp`).
    TrackStarted {
        track: u64,
        /// The SFU's peer that publishes it.
        peer: u64,
        mid: String,
        video: bool,
    },
    TrackEnded {
        track: u64,
    },
    /// Who was there when the recording started.
    Participants {
        participants: Vec<ParticipantInfo>,
    },
    /// A media peer's participant and what its m-lines carry.
    Publisher {
        peer: u64,
        participant: ParticipantId,
        sources: BTreeMap<String, TrackSource>,
    },
    /// A message the room sent to everyone (chat, joins and leaves, stage, hands).
    Room {
        message: ServerMessage,
    },
    /// The recorder could not keep up and lost this many packets since the last report.
    Dropped {
        packets: u64,
    },
}

/// The events of a file, in order; lines that do not parse (a cut-off tail) are skipped.
pub fn parse(text: &str) -> Vec<TimedEvent> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// One line, with its newline.
pub fn line(event: &TimedEvent) -> String {
    // Our own types of strings and numbers always serialize.
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_a_cut_line_is_skipped() {
        let events = [
            TimedEvent {
                t_ms: 0,
                event: Event::Started {
                    lesson: LessonId(3),
                    room: RoomName::for_lesson(LessonId(3)),
                    started_at_ms: 1_700_000_000_000,
                },
            },
            TimedEvent {
                t_ms: 1500,
                event: Event::Room {
                    message: ServerMessage::Hands {
                        hands: vec![ParticipantId(2)],
                    },
                },
            },
        ];
        let mut text: String = events.iter().map(line).collect();
        assert!(
            text.starts_with(r#"{"t_ms":0,"type":"started","lesson":3"#),
            "{text}"
        );
        text.push_str(r#"{"t_ms":1600,"type":"pau"#);
        assert_eq!(parse(&text), events);
    }
}
