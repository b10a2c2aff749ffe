//! The lesson's recording: teachers (the `record` grant) start, pause, resume and stop it, or
//! the server starts it (the course records by default). The recorder is told first, then
//! everyone sees the indicator; ending the lesson stops it.

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{RecordingState, ServerMessage};

use super::{Output, RecordingEffect, Refusal, Room, RoomKind};

impl Room {
    /// Starts recording on the server's initiative. Nothing happens when already recording,
    /// ended, or when a teacher has controlled the recording by hand (a lesson restored after
    /// a restart whose teacher stopped it stays stopped).
    pub(super) fn start_recording(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        // A breakout room is not recorded (its own replay is left for later).
        if !self.ended
            && self.recording == RecordingState::Off
            && !self.recording_by_hand
            && self.kind == RoomKind::Lesson
        {
            self.set_recording(
                RecordingState::Recording,
                RecordingEffect::Started,
                &mut out,
            );
        }
        out
    }

    /// A teacher's recording control: allowed only with the `record` grant, and only from
    /// the state it applies to (start when off, pause when recording, ...).
    pub(super) fn change_recording(
        &mut self,
        may_record: bool,
        effect: RecordingEffect,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        use RecordingState::{Off, Paused, Recording};
        if !may_record {
            return Err(Refusal::grant("record", "record the lesson"));
        }
        if self.kind == RoomKind::Breakout {
            return Err(Refusal::new(
                ErrorCode::RecordingState,
                "breakout rooms are not recorded; the lesson's recording goes on in its main room",
            ));
        }
        let next = match (effect, self.recording) {
            (RecordingEffect::Started, Off) => Recording,
            (RecordingEffect::Paused, Recording) => Paused,
            (RecordingEffect::Resumed, Paused) => Recording,
            (RecordingEffect::Stopped, Recording | Paused) => Off,
            (_, now) => {
                return Err(Refusal::new(
                    ErrorCode::RecordingState,
                    format!("the recording is {}: that does not apply", now.as_str()),
                ));
            }
        };
        self.recording_by_hand = true;
        self.set_recording(next, effect, out);
        Ok(())
    }

    /// The recorder is told first, then everyone sees the indicator.
    pub(super) fn set_recording(
        &mut self,
        next: RecordingState,
        effect: RecordingEffect,
        out: &mut Vec<Output>,
    ) {
        self.recording = next;
        out.push(Output::Recording(effect));
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Recording { state: next },
        });
    }
}
