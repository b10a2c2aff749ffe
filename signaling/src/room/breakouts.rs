//! Breakout rooms, as the rules of both kinds of room.
//!
//! The lesson's main room keeps the plan (`breakout.rs`) and acts on it: a moderator opens a
//! round of rooms, moves students, visits, broadcasts a text, closes the round (or its timer
//! does); a student chooses a room or calls a teacher. A participant sent to a breakout room
//! keeps their place here (they are still in the lesson: one attendance interval, the
//! reconnect grace of the main room), but their media peer here goes, and their session is
//! moved ([`Output::Transfer`]): from then on only messages addressed to them
//! ([`Output::Send`]) reach them from here, not the main room's broadcasts.
//!
//! A breakout room ([`RoomKind::Breakout`]) is a room like any other, with its own stage,
//! chat and board; it is live from the start, every student in it may publish camera,
//! microphone and screen, and it reports nothing of the lesson (going live, ending,
//! attendance): the main room does. A session moved out leaves it at once
//! ([`super::Input::Departed`]), without the grace of a dropped connection.

use std::time::Instant;

use classroom_protocol::signal::{BreakoutRequest, LeaveReason, ParticipantId, ServerMessage};
use classroom_protocol::{CloseReason, ErrorCode, ParticipantRole, TrackSource};

use super::breakout::{BreakoutPlan, PlanError, TimerNews};
use super::{Actor, AttendanceEvent, ConnectionId, Output, Refusal, Room};

/// What a room is to its lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// The lesson's main room: the one its join tokens name.
    Lesson,
    /// A breakout room of the lesson, entered only by a session the main room moves.
    Breakout,
}

/// What a student may publish in a breakout room: everyone may speak and show.
const BREAKOUT_SOURCES: [TrackSource; 4] = [
    TrackSource::Camera,
    TrackSource::Microphone,
    TrackSource::Screen,
    TrackSource::ScreenAudio,
];

impl From<PlanError> for Refusal {
    fn from(e: PlanError) -> Self {
        Refusal::new(ErrorCode::InvalidBreakout, e.to_string())
    }
}

fn no_rounds_open() -> Refusal {
    Refusal::new(ErrorCode::BreakoutState, "no breakout rooms are open")
}

impl Room {
    pub fn kind(&self) -> RoomKind {
        self.kind
    }

    /// Whether the participant's session is in a breakout room now (it has no media peer
    /// here until it comes back).
    pub(super) fn is_away(&self, participant: ParticipantId) -> bool {
        self.breakouts
            .as_ref()
            .is_some_and(|plan| plan.room_of(participant).is_some())
    }

    /// The sources a participant of `role` may publish on entering, when this room gives
    /// more than the token (a breakout room to students).
    pub(super) fn entry_sources(&self, role: ParticipantRole) -> Option<Vec<TrackSource>> {
        (self.kind == RoomKind::Breakout && role == ParticipantRole::Student)
            .then(|| BREAKOUT_SOURCES.to_vec())
    }

    /// Whether this output is the main room's to give: a breakout room says nothing of the
    /// lesson's state or attendance.
    pub(super) fn reports(&self, output: &Output) -> bool {
        self.kind == RoomKind::Lesson
            || !matches!(
                output,
                Output::Lesson(super::LessonEffect::WentLive(_) | super::LessonEffect::Ended(_))
                    | Output::Attendance(_)
            )
    }

    /// `open_breakouts`: a new round of rooms, its students moved at once (except in `choose`
    /// mode).
    pub(super) fn open_breakouts(
        &mut self,
        now: Instant,
        actor: &Actor,
        request: &BreakoutRequest,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("open breakout rooms")?;
        if self.kind == RoomKind::Breakout {
            return Err(Refusal::new(
                ErrorCode::BreakoutState,
                "breakout rooms open from the lesson's main room",
            ));
        }
        if self.breakouts.is_some() {
            return Err(Refusal::new(
                ErrorCode::BreakoutState,
                "breakout rooms are open already; close them first",
            ));
        }
        let students: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.info.role == ParticipantRole::Student)
            .map(|(id, _)| *id)
            .collect();
        let round = self.breakout_round + 1;
        // Sans-IO: the time into the lesson is as good a seed as any, and tests can set it.
        let nanos = now.saturating_duration_since(self.opened_at).as_nanos();
        let seed = u64::try_from(nanos % u128::from(u64::MAX)).unwrap_or(0) ^ u64::from(round);
        if request.record && !actor.may_record {
            return Err(Refusal::grant("record", "record the breakout rooms"));
        }
        let plan = BreakoutPlan::open(now, self.lesson, round, request, &students, seed)?;
        let moves: Vec<(ParticipantId, u32)> = plan.away().collect();
        // The rooms hear that they record before anyone is moved there: the first student
        // in finds the recording on.
        out.extend(plan.recorded().map(|room| Output::RecordRoom {
            room: room.clone(),
            on: true,
        }));
        self.breakout_round = round;
        self.breakouts = Some(plan);
        for (participant, room) in moves {
            self.send_to(participant, Some(room), out);
        }
        self.announce_breakouts(now, out);
        Ok(())
    }

    /// `move_to_breakout`: a moderator places a student.
    pub(super) fn move_to_breakout(
        &mut self,
        now: Instant,
        actor: &Actor,
        participant: ParticipantId,
        room: Option<u32>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("move participants between rooms")?;
        if self.breakouts.is_none() {
            return Err(no_rounds_open());
        }
        if self.role(participant) != Some(ParticipantRole::Student) {
            return Err(Refusal::new(
                ErrorCode::InvalidBreakout,
                format!("participant {participant} is not a student of this lesson"),
            ));
        }
        self.place(now, participant, room, out)
    }

    /// `choose_breakout`: a student picks a room, when the round lets them.
    pub(super) fn choose_breakout(
        &mut self,
        now: Instant,
        actor: &Actor,
        room: u32,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let choosing = self.breakouts.as_ref().map(BreakoutPlan::mode);
        if choosing != Some(classroom_protocol::signal::BreakoutMode::Choose) {
            return Err(Refusal::new(
                ErrorCode::BreakoutState,
                "the breakout rooms are not open for choosing",
            ));
        }
        if self.role(actor.id) != Some(ParticipantRole::Student) {
            return Err(Refusal::new(
                ErrorCode::InvalidBreakout,
                "students choose a room; moderators visit",
            ));
        }
        self.place(now, actor.id, Some(room), out)
    }

    fn place(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        room: Option<u32>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let plan = self.breakouts.as_mut().ok_or_else(no_rounds_open)?;
        let was = plan.place_student(participant, room)?;
        if was != room {
            self.send_to(participant, room, out);
            self.announce_breakouts(now, out);
        }
        Ok(())
    }

    /// `visit_breakout`: a moderator goes to see a room, or comes back.
    pub(super) fn visit_breakout(
        &mut self,
        now: Instant,
        actor: &Actor,
        room: Option<u32>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("visit breakout rooms")?;
        let plan = self.breakouts.as_mut().ok_or_else(no_rounds_open)?;
        let was = plan.visit(actor.id, room)?;
        if was != room {
            self.send_to(actor.id, room, out);
            self.announce_breakouts(now, out);
        }
        Ok(())
    }

    /// `broadcast_to_breakouts`: a moderator's text, to everyone of the lesson wherever they
    /// are.
    pub(super) fn broadcast_to_breakouts(
        &mut self,
        actor: &Actor,
        text: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("speak to every breakout room")?;
        if self.breakouts.is_none() {
            return Err(no_rounds_open());
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > self.config.max_chat_chars {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                format!(
                    "a message to the rooms has 1 to {} characters",
                    self.config.max_chat_chars
                ),
            ));
        }
        let message = ServerMessage::BreakoutMessage {
            from: actor.id,
            name: actor.name.clone(),
            text: text.to_string(),
        };
        self.send_to_everyone(&message, out);
        Ok(())
    }

    /// `speak_to_breakouts`: a moderator's microphone heard in every breakout room, from
    /// wherever they are, or no more. The main room decides and tells the session, which
    /// carries it into each room it is moved to ([`Output::Voice`], [`super::Input::Voice`]);
    /// the room the moderator is in has the media plane forward their audio.
    pub(super) fn speak_to_breakouts(
        &mut self,
        now: Instant,
        actor: &Actor,
        on: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("speak to every breakout room")?;
        if self.kind == RoomKind::Breakout || (on && self.breakouts.is_none()) {
            return Err(no_rounds_open());
        }
        if self.set_voice(actor.id, on, out) {
            self.announce_breakouts(now, out);
        }
        Ok(())
    }

    /// Turns `participant`'s voice to the breakout rooms on or off here and in their session;
    /// whether it changed.
    fn set_voice(&mut self, participant: ParticipantId, on: bool, out: &mut Vec<Output>) -> bool {
        let changed = if on {
            self.voices.insert(participant)
        } else {
            self.voices.remove(&participant)
        };
        if !changed {
            return false;
        }
        out.extend(self.voice_to_peers(participant, on));
        if let Some(connection) = self
            .participants
            .get(&participant)
            .and_then(|p| p.connection)
        {
            out.push(Output::Voice { connection, on });
        }
        true
    }

    /// The media commands that carry `participant`'s voice to every breakout room of the
    /// lesson from each of their peers here, or stop it.
    fn voice_to_peers(&self, participant: ParticipantId, on: bool) -> Vec<Output> {
        let lesson = on.then_some(self.lesson);
        self.media
            .of(participant)
            .into_iter()
            .map(|peer| Output::ToMedia(super::MediaCommand::SetVoiceBroadcast { peer, lesson }))
            .collect()
    }

    /// [`super::Input::Voice`]: a moderator moved here speaks to every breakout room (or
    /// stopped): their peers here carry it. Only a breakout room takes it; the main room
    /// decides.
    pub(super) fn voice_here(&mut self, participant: ParticipantId, on: bool) -> Vec<Output> {
        if self.kind != RoomKind::Breakout || !self.participants.contains_key(&participant) {
            return Vec::new();
        }
        let changed = if on {
            self.voices.insert(participant)
        } else {
            self.voices.remove(&participant)
        };
        if changed {
            self.voice_to_peers(participant, on)
        } else {
            Vec::new()
        }
    }

    /// [`super::Input::BreakoutSpeakers`]: who speaks in one of the open rooms, named by their
    /// id here, for the moderators' overview (sent on change). A closed round's room, or users
    /// not in that room (any more), count for nothing.
    pub(super) fn breakout_speakers(
        &mut self,
        room: &classroom_protocol::RoomName,
        users: &[classroom_protocol::UserId],
    ) -> Vec<Output> {
        let Some(plan) = &self.breakouts else {
            return Vec::new();
        };
        let Some(index) = plan.index_of(room) else {
            return Vec::new();
        };
        let mut speakers: Vec<ParticipantId> = Vec::new();
        for user in users {
            let found = self.by_user.get(user).copied();
            if let Some(id) = found.filter(|id| plan.room_of(*id) == Some(index))
                && !speakers.contains(&id)
            {
                speakers.push(id);
            }
        }
        let changed = self
            .breakouts
            .as_mut()
            .is_some_and(|plan| plan.set_speakers(index, speakers.clone()));
        if !changed {
            return Vec::new();
        }
        let message = ServerMessage::BreakoutSpeakers {
            room: index,
            speakers,
        };
        self.participants
            .iter()
            .filter(|(_, p)| p.moderates() && p.connection.is_some())
            .map(|(id, _)| Output::Send {
                to: *id,
                message: message.clone(),
            })
            .collect()
    }

    /// `call_teacher`: a student in a breakout room asks a moderator to come.
    pub(super) fn call_teacher(
        &mut self,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let room = self
            .breakouts
            .as_ref()
            .and_then(|plan| plan.room_of(actor.id))
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::BreakoutState,
                    "call a teacher from a breakout room",
                )
            })?;
        let message = ServerMessage::TeacherCalled {
            participant: actor.id,
            name: actor.name.clone(),
            room,
        };
        for (id, p) in &self.participants {
            if p.moderates() {
                out.push(Output::Send {
                    to: *id,
                    message: message.clone(),
                });
            }
        }
        Ok(())
    }

    /// `close_breakouts`.
    pub(super) fn close_breakouts(
        &mut self,
        now: Instant,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("close the breakout rooms")?;
        if self.breakouts.is_none() {
            return Err(no_rounds_open());
        }
        self.close_round(now, out);
        Ok(())
    }

    /// Everyone comes back, and the round's rooms close.
    pub(super) fn close_round(&mut self, now: Instant, out: &mut Vec<Output>) {
        // The voices stop before anyone moves: their sessions carry nothing back here.
        let voices: Vec<ParticipantId> = self.voices.iter().copied().collect();
        for participant in voices {
            self.set_voice(participant, false, out);
        }
        let Some(plan) = self.breakouts.take() else {
            return;
        };
        for (participant, _) in plan.away() {
            self.send_to(participant, None, out);
        }
        out.push(Output::CloseRooms(plan.rooms().to_vec()));
        self.announce_breakouts(now, out);
    }

    /// The round's timer: the warning, then the end.
    pub(super) fn breakout_timer(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match self.breakouts.as_mut().and_then(|p| p.handle_timeout(now)) {
            Some(TimerNews::Warning(seconds_left)) => {
                let message = ServerMessage::BreakoutsEnding { seconds_left };
                self.send_to_everyone(&message, &mut out);
            }
            Some(TimerNews::Ended) => self.close_round(now, &mut out),
            None => {}
        }
        out
    }

    /// A participant joined or came back: a student placed in a room goes there again, and
    /// anyone hears of the open rooms.
    pub(super) fn breakouts_on_entry(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        out: &mut Vec<Output>,
    ) {
        let Some(plan) = &self.breakouts else {
            return;
        };
        let status = self.breakout_status(now);
        let room = plan.room_of(participant);
        out.push(Output::Send {
            to: participant,
            message: ServerMessage::Breakouts { breakouts: status },
        });
        // A new session (a reconnect) learns that its moderator speaks to every room, before
        // any move, so that it carries the voice along.
        let connection = self
            .participants
            .get(&participant)
            .and_then(|p| p.connection);
        if let Some(connection) = connection.filter(|_| self.voices.contains(&participant)) {
            out.push(Output::Voice {
                connection,
                on: true,
            });
        }
        if room.is_some() {
            self.send_to(participant, room, out);
        }
    }

    /// The participant left the lesson: they are in no room any more.
    pub(super) fn breakouts_on_leave(&mut self, participant: ParticipantId, out: &mut Vec<Output>) {
        let now = self.now;
        let spoke = self.voices.remove(&participant);
        let forgotten = self
            .breakouts
            .as_mut()
            .is_some_and(|p| p.forget(participant));
        if forgotten || spoke {
            self.announce_breakouts(now, out);
        }
    }

    /// Moves `participant`'s session to breakout room `room`, or back here (`None`). Their
    /// media peer here goes with the move out; back here, they get this room's `joined`
    /// again. A participant whose connection dropped is moved when they come back.
    fn send_to(&mut self, participant: ParticipantId, room: Option<u32>, out: &mut Vec<Output>) {
        let Some(connection) = self
            .participants
            .get(&participant)
            .and_then(|p| p.connection)
        else {
            return;
        };
        let place = room.and_then(|r| self.breakouts.as_ref().and_then(|p| p.place(r)));
        if room.is_some() && place.is_none() {
            return; // no such room: the plan refused it already
        }
        let to = place.as_ref().and_then(|p| self.breakout_name(p.index));
        if room.is_some() {
            out.extend(self.connection_gone(connection));
        }
        if self.participants.get(&participant).map(|p| p.info.role)
            == Some(ParticipantRole::Student)
        {
            self.attended(
                participant,
                |user| AttendanceEvent::Breakout { user, room },
                out,
            );
        }
        // The move first, then `moved`: the session has changed rooms before the client
        // hears of it, so whatever the client sends after `moved` reaches the new room.
        out.push(Output::Transfer {
            participant,
            connection,
            to,
        });
        out.push(Output::Send {
            to: participant,
            message: ServerMessage::Moved { to: place },
        });
        if room.is_none()
            && let Some(snapshot) = self.snapshot_for(participant)
        {
            out.push(Output::Send {
                to: participant,
                message: snapshot,
            });
        }
    }

    /// The open round as the lesson sees it, with who speaks to every room.
    fn breakout_status(&self, now: Instant) -> Option<classroom_protocol::signal::BreakoutStatus> {
        let mut status = self.breakouts.as_ref()?.status(now);
        status.voice = self.voices.iter().copied().collect();
        Some(status)
    }

    fn breakout_name(&self, index: u32) -> Option<classroom_protocol::RoomName> {
        let plan = self.breakouts.as_ref()?;
        plan.rooms().get(usize::try_from(index).ok()?).cloned()
    }

    /// Tells everyone of the lesson, wherever they are, the rooms as they are now.
    pub(super) fn announce_breakouts(&self, now: Instant, out: &mut Vec<Output>) {
        let message = ServerMessage::Breakouts {
            breakouts: self.breakout_status(now),
        };
        self.send_to_everyone(&message, out);
    }

    /// One message to each participant, in the main room or away (a broadcast reaches only
    /// those here).
    fn send_to_everyone(&self, message: &ServerMessage, out: &mut Vec<Output>) {
        for (id, p) in &self.participants {
            if p.connection.is_some() {
                out.push(Output::Send {
                    to: *id,
                    message: message.clone(),
                });
            }
        }
    }

    /// [`super::Input::Departed`]: the session moved to another room of the lesson; its place
    /// here is given up now (its connection stays open).
    pub(super) fn departed(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
    ) -> Vec<Output> {
        let Some(p) = self.participants.get_mut(&participant) else {
            return Vec::new();
        };
        if p.connection != Some(connection) {
            return Vec::new();
        }
        p.connection = None;
        self.voices.remove(&participant);
        let mut out = self.connection_gone(connection);
        self.remove(participant, LeaveReason::Moved, CloseReason::Done, &mut out);
        out
    }
}
