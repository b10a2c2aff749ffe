//! The lesson's recording: teachers (the `record` grant) start, pause, resume and stop it, or
//! the server starts it (the course records by default). The recorder is told first, then
//! everyone sees the indicator; ending the lesson stops it.
//!
//! A breakout room is recorded when the lesson's main room says so (its plan keeps which
//! rooms record: `open_breakouts` with `record`, or `record_breakout` from the breakout panel;
//! [`Output::RecordRoom`], [`super::Input::RecordRoom`]). One word, the main room's, so the
//! panel and the rooms never disagree. A wanted room records from when someone is in it (a
//! room nobody chose makes no empty replay) until the main room no longer wants it or the
//! room closes with its round; its recording is a recording like the main room's (its own
//! folder, crash-safe, its own replay, linked to the lesson and its round and room).

use std::time::Instant;

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{RecordingState, ServerMessage};

use super::{Actor, Output, RecordingEffect, Refusal, Room, RoomKind};

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
                "a breakout room is recorded from the lesson's breakout panel (record_breakout)",
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

    /// `record_breakout`: a moderator with the `record` grant records breakout room `index` of
    /// the open round, or no more; the room hears of it from here.
    pub(super) fn record_breakout(
        &mut self,
        now: Instant,
        actor: &Actor,
        index: u32,
        on: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("record a breakout room")?;
        if !actor.may_record {
            return Err(Refusal::grant("record", "record a breakout room"));
        }
        let plan = self
            .breakouts
            .as_mut()
            .ok_or_else(|| Refusal::new(ErrorCode::BreakoutState, "no breakout rooms are open"))?;
        if plan.set_recorded(index, on)? {
            if let Some(room) = plan
                .rooms()
                .get(usize::try_from(index).unwrap_or(usize::MAX))
            {
                out.push(Output::RecordRoom {
                    room: room.clone(),
                    on,
                });
            }
            self.announce_breakouts(now, out);
        }
        Ok(())
    }

    /// [`super::Input::RecordRoom`]: the main room wants this breakout room recorded, or no
    /// more ([`Room::breakout_recording`] acts on it in the same step).
    pub(super) fn record_here(&mut self, on: bool) -> Vec<Output> {
        if self.kind == RoomKind::Breakout {
            self.recording_wanted = on;
        }
        Vec::new()
    }

    /// A breakout room after each step: it records while the main room wants it, from when
    /// someone is in it, and stops when it is no longer wanted or the room closes (`closing`).
    pub(super) fn breakout_recording(&mut self, closing: bool) -> Vec<Output> {
        let mut out = Vec::new();
        if self.kind != RoomKind::Breakout {
            return out;
        }
        if closing {
            self.recording_wanted = false;
        }
        let present = self.participants.values().any(|p| p.connection.is_some());
        match self.recording {
            RecordingState::Off if self.recording_wanted && present && !self.ended => {
                self.set_recording(
                    RecordingState::Recording,
                    RecordingEffect::Started,
                    &mut out,
                );
            }
            RecordingState::Recording | RecordingState::Paused if !self.recording_wanted => {
                self.set_recording(RecordingState::Off, RecordingEffect::Stopped, &mut out);
            }
            _ => {}
        }
        out
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
