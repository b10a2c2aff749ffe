//! The room: the live session of one lesson, as one state machine with no I/O, in the shape
//! of str0m's `Rtc`: [`Room::handle_input`] takes `now` and what happened ([`Input`]: client
//! messages, connections joining and going, the media plane's replies and events, access and
//! encoder changes, timeouts), [`Room::poll_output`] yields what to do about it ([`Output`]:
//! messages to participants, commands to the media plane, events for the rest of the server)
//! and [`Room::poll_timeout`] says when time next matters. The room task (`driver/task.rs`)
//! only carries outputs out and feeds inputs in.
//!
//! The rules live in one file per concern: participants, reconnects and the lesson's end
//! (`participants.rs`), stage, hands and mute (`stage.rs`), chat (`chat.rs`), recording
//! (`recording.rs`), the document shown to the class (`slides.rs`), the whiteboard
//! (`board.rs`), media peers and
//! negotiation (`peers.rs`), the RTMP encoder
//! (`encoder.rs`), changes of access (`access.rs`) and breakout rooms (`breakouts.rs`, with
//! their plan in `breakout.rs`). Each returns the outputs of its step;
//! [`Room::handle_input`] then follows them up the same way for every input: a change of a
//! participant's media permissions becomes commands for each of their peers, a closed
//! connection takes its peer, and while the lesson is recorded the recorder hears what
//! everyone hears.
//!
//! Invariants:
//! - Every action is checked against the acting participant's current grants, here and only
//!   here; a refused action changes nothing and answers an error naming the missing grant.
//! - A user has at most one participant per room; joining again takes the same place.
//! - Grants change only here (stage in and out); the media plane is told in the same step,
//!   before anyone hears of it, and a peer whose offer was under way when they changed is
//!   brought in line when it opens.
//! - One media peer per connection; it goes when its connection goes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    ChatMessage, ClientMessage, ParticipantId, ParticipantInfo, RecordingState, ServerMessage,
    Slide,
};
use classroom_protocol::{
    CourseId, ErrorCode, Grants, LessonId, ParticipantRole, RoomName, UserId,
};

use crate::media::PeerIds;

mod access;
mod attendance;
mod board;
mod board_persist;
mod breakout;
mod breakouts;
mod chat;
mod encoder;
mod input;
mod output;
mod participants;
mod peers;
mod persist;
mod polls;
mod recording;
mod roster;
mod slides;
mod stage;

pub use attendance::AttendanceEvent;
pub use board::BoardLimits;
pub use board_persist::{BOARD_SAVE_INTERVAL, BoardChange, KeptBoard, KeptStroke};
pub use breakouts::RoomKind;
pub use encoder::{EncoderError, EncoderIdentity};
pub use input::{Input, MediaReply};
pub use output::{
    LessonEffect, MediaCommand, MediaEffect, Output, PeerFiling, RecordingEffect, RequestId,
    RoomActivity,
};
pub use participants::JoinError;
pub use persist::RoomState;
pub use polls::{AnswerError, KeptPoll, PollError};

/// Limits and timings of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub max_participants: usize,
    /// Chat messages kept for late joiners.
    pub chat_history: usize,
    pub max_chat_chars: usize,
    /// How long a dropped connection keeps its place before the participant is removed.
    pub reconnect_grace: Duration,
    /// Past this many participants, students hear only of the notable ones and the head
    /// count (`roster.rs`).
    pub full_roster_limit: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_participants: 500,
            chat_history: 100,
            max_chat_chars: 2000,
            reconnect_grace: Duration::from_secs(20),
            full_roster_limit: 150,
        }
    }
}

/// One WebSocket connection; a participant's connection changes when it reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

#[derive(Debug, Clone)]
struct Participant {
    info: ParticipantInfo,
    grants: Grants,
    /// The grants the join token gave, to return to when leaving the stage.
    base_grants: Grants,
    connection: Option<ConnectionId>,
    disconnected_at: Option<Instant>,
}

impl Participant {
    fn moderates(&self) -> bool {
        self.grants.moderate
    }
}

/// Who acts, with what they may do, as the step began.
struct Actor {
    id: ParticipantId,
    user: UserId,
    name: String,
    moderator: bool,
    may_chat: bool,
    may_record: bool,
}

impl Actor {
    fn require_moderator(&self, action: &str) -> Result<(), Refusal> {
        if self.moderator {
            Ok(())
        } else {
            Err(Refusal::grant("moderate", action))
        }
    }
}

/// A refusal of an action: code, message and the grant it lacked.
struct Refusal {
    code: ErrorCode,
    message: String,
    grant: Option<&'static str>,
}

impl Refusal {
    fn grant(grant: &'static str, action: &str) -> Self {
        Refusal {
            code: ErrorCode::MissingGrant,
            message: format!("you need the `{grant}` grant to {action}"),
            grant: Some(grant),
        }
    }

    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            grant: None,
        }
    }
}

/// The live session of one lesson.
#[derive(Debug)]
pub struct Room {
    name: RoomName,
    lesson: LessonId,
    kind: RoomKind,
    config: RoomConfig,
    opened_at: Instant,
    /// The time of the step under way (for the rules that report a timer's seconds left).
    now: Instant,
    participants: BTreeMap<ParticipantId, Participant>,
    by_user: HashMap<UserId, ParticipantId>,
    next_participant: u64,
    hands: VecDeque<ParticipantId>,
    chat: VecDeque<ChatMessage>,
    next_chat_seq: u64,
    chat_locked: bool,
    /// The lesson's course, from the join tokens (all name the same one).
    course: Option<CourseId>,
    /// Users a moderator removed, refused whatever their token until let back in. The
    /// database keeps them too (for other nodes and restarts); this closes the moment between
    /// the removal and its write.
    removed_users: HashSet<UserId>,
    live: bool,
    ended: bool,
    recording: RecordingState,
    /// A teacher started, paused or stopped the recording: the server leaves it to them.
    recording_by_hand: bool,
    /// A breakout room: the lesson's main room wants it recorded (`recording.rs`).
    recording_wanted: bool,
    /// Places held before a restore, waiting for their users (`persist.rs`).
    restored: persist::Restored,
    /// What was last handed out to be stored.
    stored_key: Option<persist::StateKey>,
    /// The document shown to the class and its page.
    slide: Option<Slide>,
    /// The whiteboard: strokes per page, the blank board, who holds the pen.
    board: board::Boards,
    polls: polls::Polls,
    encoder: encoder::EncoderSlot,
    media: peers::MediaPeers,
    /// The main room's open round of breakout rooms, and the last round's number.
    breakouts: Option<breakout::BreakoutPlan>,
    breakout_round: u32,
    /// Participants whose microphone every breakout room hears (`breakouts.rs`): in the main
    /// room, the moderators speaking to the rooms; in a breakout room, those of them here.
    voices: std::collections::BTreeSet<ParticipantId>,
    /// Who has been told of whom: the participant list of a large room.
    roster: roster::Roster,
    /// Outputs not yet polled, oldest first.
    outputs: VecDeque<Output>,
}

impl Room {
    /// A room without media: `offer` is refused with `media_unavailable`. A breakout room's
    /// name ([`RoomName::for_breakout`]) makes a breakout room, live from the start.
    pub fn new(name: RoomName, lesson: LessonId, config: RoomConfig, now: Instant) -> Self {
        let kind = match name.breakout() {
            Some(_) => RoomKind::Breakout,
            None => RoomKind::Lesson,
        };
        Room {
            name,
            lesson,
            kind,
            config,
            opened_at: now,
            now,
            participants: BTreeMap::new(),
            by_user: HashMap::new(),
            next_participant: 1,
            hands: VecDeque::new(),
            chat: VecDeque::new(),
            next_chat_seq: 1,
            chat_locked: false,
            course: None,
            removed_users: HashSet::new(),
            live: kind == RoomKind::Breakout,
            ended: false,
            recording: RecordingState::Off,
            recording_by_hand: false,
            recording_wanted: false,
            restored: persist::Restored::default(),
            stored_key: None,
            slide: None,
            board: board::Boards::default(),
            polls: polls::Polls::default(),
            encoder: encoder::EncoderSlot::default(),
            media: peers::MediaPeers::default(),
            breakouts: None,
            breakout_round: 0,
            voices: std::collections::BTreeSet::new(),
            roster: roster::Roster::default(),
            outputs: VecDeque::new(),
        }
    }

    /// The room negotiates media, naming its peers from `ids` (shared by the node's rooms, so
    /// that a peer id is never reused).
    pub fn with_media(mut self, ids: PeerIds) -> Self {
        self.media = peers::MediaPeers::new(ids);
        self
    }

    /// Takes in what happened at `now`; what to do about it is then ready in
    /// [`Room::poll_output`].
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        // Speakers and connection quality are not part of what the recorder keeps.
        let record = !matches!(input, Input::MediaEvent(_));
        let closing = matches!(input, Input::Closed);
        self.polls.now = Some(now);
        self.lapse_restored(now);
        self.now = now;
        let mut step = match input {
            Input::Join {
                connection,
                id,
                claims,
                opened_at,
                edge,
                go_live,
            } => self.join_input(now, connection, id, &claims, (opened_at, edge), go_live),
            Input::Message {
                participant,
                connection,
                id,
                message,
            } => self.message(now, participant, connection, id, message),
            Input::Disconnected {
                participant,
                connection,
            } => {
                let mut step = self.connection_gone(connection);
                step.extend(self.disconnected(now, participant, connection));
                step
            }
            Input::Departed {
                participant,
                connection,
            } => self.departed(participant, connection),
            Input::Voice { participant, on } => self.voice_here(participant, on),
            Input::BreakoutSpeakers { room, users } => self.breakout_speakers(&room, &users),
            Input::MediaReply(reply) => self.media_reply(reply),
            Input::MediaEvent(notice) => self.media_event(notice),
            Input::StartRecording => self.start_recording(),
            Input::RecordRoom { on } => self.record_here(on),
            Input::Access(change) => self.access_changed(change),
            Input::Revoke { user, why } => self.revoke(user, why),
            Input::EncoderStarted { identity, mids } => self.encoder_input(&identity, mids),
            Input::EncoderChanged { state, reason } => self.encoder_changed(state, reason),
            Input::Timeout => {
                let mut step = self.handle_timeout(now);
                step.extend(self.poll_timers(now));
                step.extend(self.breakout_timer(now));
                step
            }
            Input::Closed => self.close_peers(),
        };
        step.extend(self.breakout_recording(closing));
        // The open poll's answers are stored when the lesson ends or the room closes, ahead
        // of the lesson's end: a student's own answers are listed once the lesson has ended.
        if closing || self.ended {
            let mut stored = Vec::new();
            self.close_poll_now(now, &mut stored);
            stored.extend(step);
            step = stored;
        }
        self.follow(step, record);
    }

    /// The next thing to do, oldest first; `None` once everything is done.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Timeout`] next has work: a dropped connection's grace period ends, a
    /// poll's timer runs out or moderators are due a poll's results, the breakout rooms'
    /// timer warns or ends, a large room's held-back head count is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self
            .participants
            .values()
            .filter_map(|p| p.disconnected_at)
            .min()
            .map(|at| at + self.config.reconnect_grace);
        let breakouts = self.breakouts.as_ref().and_then(|p| p.deadline());
        let count = self.roster.deadline(self.participants.len());
        let board_saves = self.board.saves.deadline();
        [grace, self.poll_deadline(), breakouts, count, board_saves]
            .into_iter()
            .flatten()
            .min()
    }

    /// Follows up the outputs of one step, the same way whatever the step was, and queues
    /// them: a participant's media permissions reach each of their peers before anyone hears
    /// of the change, a closed connection takes its peer with it, and while the lesson is
    /// recorded (and for the recording state itself) the recorder hears what everyone hears
    /// (`record`), and who is in the room and what they publish when the recording starts.
    /// Participant messages go where the roster says (`roster.rs`: a large room tells
    /// students of the notable only), and its head count follows.
    fn follow(&mut self, step: Vec<Output>, record: bool) {
        let recording = self.recording != RecordingState::Off;
        for output in step {
            if !self.reports(&output) {
                continue;
            }
            match output {
                Output::Media(effect) => {
                    let commands = self.apply_to_peers(&effect);
                    self.outputs.extend(commands);
                    self.outputs.push_back(Output::Media(effect));
                }
                Output::Close { connection, why } => {
                    self.outputs.push_back(Output::Close { connection, why });
                    let gone = self.connection_gone(connection);
                    self.outputs.extend(gone);
                }
                Output::Broadcast { except, message } => {
                    let heard =
                        record && (recording || matches!(message, ServerMessage::Recording { .. }));
                    let activity = heard.then(|| RoomActivity::Broadcast(message.clone()));
                    let mut routed = Vec::new();
                    self.route_broadcast(except, message, &mut routed);
                    self.outputs.extend(routed);
                    self.outputs.extend(activity.map(Output::Activity));
                }
                Output::Recording(RecordingEffect::Started) => {
                    self.outputs
                        .push_back(Output::Recording(RecordingEffect::Started));
                    let present = RoomActivity::Participants(self.participants());
                    self.outputs.push_back(Output::Activity(present));
                    let publishers = self.publishers(None);
                    self.outputs.extend(publishers);
                    // The slide and the board shown, so that the replay starts on that
                    // page (with its title) and draws on from there.
                    if let Some(slide) = self.slide {
                        let slide = ServerMessage::Slide { slide: Some(slide) };
                        self.outputs
                            .push_back(Output::Activity(RoomActivity::Broadcast(slide)));
                    }
                    if self.board_page().is_some() {
                        let board = ServerMessage::Board {
                            board: self.board(),
                        };
                        self.outputs
                            .push_back(Output::Activity(RoomActivity::Broadcast(board)));
                    }
                }
                other => self.outputs.push_back(other),
            }
        }
        let mut count = Vec::new();
        self.roster_step(self.now, &mut count);
        self.outputs.extend(count);
    }

    pub fn lesson(&self) -> LessonId {
        self.lesson
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// Whether the lesson is being recorded (or paused) now.
    pub fn recording(&self) -> RecordingState {
        self.recording
    }

    /// Everyone present, as others see them.
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.participants.values().map(|p| p.info.clone()).collect()
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Participants present, connected or waiting to reconnect.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is present.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// The grants a participant holds now.
    pub fn grants(&self, participant: ParticipantId) -> Option<&Grants> {
        self.participants.get(&participant).map(|p| &p.grants)
    }

    /// The participant's role in the lesson.
    pub fn role(&self, participant: ParticipantId) -> Option<ParticipantRole> {
        self.participants.get(&participant).map(|p| p.info.role)
    }

    /// Whether a moderator muted the participant (and they have not unmuted since).
    pub fn is_muted(&self, participant: ParticipantId) -> bool {
        self.participants
            .get(&participant)
            .is_some_and(|p| p.info.muted)
    }

    /// A client message: media negotiation goes to the peers, the rest to the room's rules.
    fn message(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        connection: ConnectionId,
        id: Option<u64>,
        message: ClientMessage,
    ) -> Vec<Output> {
        match message {
            ClientMessage::Offer { sdp, sources } if self.media.enabled() => {
                self.offer(participant, connection, id, sdp, sources)
            }
            ClientMessage::Answer { sdp } if self.media.enabled() => {
                self.answer(connection, id, sdp)
            }
            ClientMessage::VideoSize { mid, height, .. } if self.media.enabled() => {
                self.video_size(connection, id, mid, height)
            }
            message => self.handle(now, participant, id, message),
        }
    }

    /// Carries out `message` from participant `from`. `id` is the request id to answer.
    fn handle(
        &mut self,
        now: Instant,
        from: ParticipantId,
        id: Option<u64>,
        message: ClientMessage,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        match self.apply(now, from, message, &mut out) {
            Ok(()) => {
                // The reply goes first: the action may close the actor's own connection.
                if let Some(id) = id {
                    out.insert(
                        0,
                        Output::Send {
                            to: from,
                            message: ServerMessage::Ok { id },
                        },
                    );
                }
            }
            Err(refusal) => {
                out.clear();
                out.push(Output::Send {
                    to: from,
                    message: ServerMessage::Error {
                        id,
                        code: refusal.code,
                        message: refusal.message,
                        grant: refusal.grant.map(str::to_string),
                    },
                });
            }
        }
        out
    }

    /// Checks who acts and hands the message to the rules of its concern.
    fn apply(
        &mut self,
        now: Instant,
        from: ParticipantId,
        message: ClientMessage,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let actor = self
            .participants
            .get(&from)
            .ok_or_else(|| Refusal::new(ErrorCode::NotJoined, "join the room first"))?;
        let actor = Actor {
            id: from,
            user: actor.info.user_id,
            name: actor.info.name.clone(),
            moderator: actor.moderates(),
            may_chat: actor.grants.chat,
            may_record: actor.grants.record,
        };
        match message {
            ClientMessage::Join { .. } => {
                return Err(Refusal::new(
                    ErrorCode::AlreadyJoined,
                    "this connection has joined already",
                ));
            }
            ClientMessage::Ping => out.push(Output::Send {
                to: from,
                message: ServerMessage::Pong,
            }),
            ClientMessage::RaiseHand => self.raise_hand(from, out),
            ClientMessage::LowerHand { participant } => {
                self.lower_hand_of(&actor, participant.unwrap_or(from), out)?;
            }
            ClientMessage::Chat { text } => self.send_chat(now, &actor, &text, out)?,
            ClientMessage::LockChat { locked } => self.lock_chat(&actor, locked, out)?,
            ClientMessage::InviteToStage { participant } => {
                self.invite_to_stage(&actor, participant, out)?;
            }
            ClientMessage::RemoveFromStage { participant } => {
                self.remove_from_stage(&actor, participant, out)?;
            }
            ClientMessage::LeaveStage => self.leave_stage(from, out),
            ClientMessage::Mute { participant } => self.mute_one(&actor, participant, out)?,
            ClientMessage::MuteAll => self.mute_all(&actor, out)?,
            ClientMessage::Unmute => self.unmute(from, out),
            ClientMessage::RemoveParticipant { participant } => {
                self.remove_participant(&actor, participant, out)?;
            }
            ClientMessage::StartRecording => {
                self.change_recording(actor.may_record, RecordingEffect::Started, out)?;
            }
            ClientMessage::PauseRecording => {
                self.change_recording(actor.may_record, RecordingEffect::Paused, out)?;
            }
            ClientMessage::ResumeRecording => {
                self.change_recording(actor.may_record, RecordingEffect::Resumed, out)?;
            }
            ClientMessage::StopRecording => {
                self.change_recording(actor.may_record, RecordingEffect::Stopped, out)?;
            }
            ClientMessage::OpenDocument {
                document,
                pages,
                page,
            } => self.open_document(&actor, document, pages, page, out)?,
            ClientMessage::TurnPage { page } => self.turn_page(&actor, page, out)?,
            ClientMessage::CloseDocument => self.close_document(&actor, out)?,
            ClientMessage::AllowBrowsing { allowed } => {
                self.allow_browsing(&actor, allowed, out)?;
            }
            // The whiteboard (board.rs).
            ClientMessage::Draw {
                tool,
                colour,
                width,
                points,
                text,
            } => self.draw(now, &actor, tool, colour, width, points, text, out)?,
            ClientMessage::DrawMore { points } => self.draw_more(now, &actor, points, out)?,
            ClientMessage::DrawEnd => self.draw_end(&actor),
            ClientMessage::Erase { stroke } => self.erase(now, &actor, stroke, out)?,
            ClientMessage::Undo => self.undo(now, &actor, false, out)?,
            ClientMessage::Redo => self.undo(now, &actor, true, out)?,
            ClientMessage::ClearBoard => self.clear_board(now, &actor, out)?,
            ClientMessage::Pointer { at } => self.point(now, &actor, at, out)?,
            ClientMessage::GivePen { participant } => {
                self.give_pen(&actor, participant, true, out)?;
            }
            ClientMessage::TakePen { participant } => {
                self.give_pen(&actor, participant, false, out)?;
            }
            ClientMessage::ShowBlankBoard { page } => self.show_blank_board(&actor, page, out)?,
            ClientMessage::CloseBlankBoard => self.close_blank_board(&actor, out)?,
            ClientMessage::AskPoll { poll } => self.ask_poll(now, &actor, poll, out)?,
            ClientMessage::AskQuickPoll { preset } => {
                self.ask_quick_poll(now, &actor, preset, out)?;
            }
            ClientMessage::AnswerPoll { poll, answer } => {
                self.answer_poll(now, &actor, poll, answer, out)?;
            }
            ClientMessage::ClosePoll { poll } => self.close_poll(now, &actor, poll, out)?,
            ClientMessage::ShowPollResults { poll } => {
                self.show_poll_results(&actor, poll, out)?;
            }
            ClientMessage::EndLesson => self.end_lesson(&actor, out)?,
            ClientMessage::GoLive => self.go_live_by(&actor, out)?,
            ClientMessage::Leave => self.leave(from, out),
            ClientMessage::ListParticipants { after, limit } => {
                self.list_participants(&actor, after, limit, out)?;
            }
            // Breakout rooms (breakouts.rs).
            ClientMessage::OpenBreakouts { request } => {
                self.open_breakouts(now, &actor, &request, out)?;
            }
            ClientMessage::MoveToBreakout { participant, room } => {
                self.move_to_breakout(now, &actor, participant, room, out)?;
            }
            ClientMessage::ChooseBreakout { room } => {
                self.choose_breakout(now, &actor, room, out)?;
            }
            ClientMessage::VisitBreakout { room } => self.visit_breakout(now, &actor, room, out)?,
            ClientMessage::BroadcastToBreakouts { text } => {
                self.broadcast_to_breakouts(&actor, &text, out)?;
            }
            ClientMessage::SpeakToBreakouts { on } => {
                self.speak_to_breakouts(now, &actor, on, out)?
            }
            ClientMessage::RecordBreakout { room, on } => {
                self.record_breakout(now, &actor, room, on, out)?;
            }
            ClientMessage::CallTeacher => self.call_teacher(&actor, out)?,
            ClientMessage::CloseBreakouts => self.close_breakouts(now, &actor, out)?,
            // Media goes to the peers (`Room::message`) when the room has a media plane.
            ClientMessage::Offer { .. }
            | ClientMessage::Answer { .. }
            | ClientMessage::VideoSize { .. } => {
                return Err(Refusal::new(
                    ErrorCode::MediaUnavailable,
                    "this server does not relay media",
                ));
            }
        }
        Ok(())
    }

    fn target_mut(&mut self, participant: ParticipantId) -> Result<&mut Participant, Refusal> {
        self.participants.get_mut(&participant).ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownParticipant,
                format!("there is no participant {participant} in this room"),
            )
        })
    }

    /// Tells everyone a participant's new state.
    fn announce(&self, participant: ParticipantId, out: &mut Vec<Output>) {
        if let Some(p) = self.participants.get(&participant) {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::ParticipantUpdated {
                    participant: p.info.clone(),
                },
            });
        }
    }
}

/// The claims of a join token for tests: `user` in `lesson` of `course` with `role`'s grants.
#[cfg(test)]
pub(crate) fn test_claims(
    user: i64,
    role: ParticipantRole,
    lesson: LessonId,
    course: CourseId,
    jti: &str,
) -> classroom_protocol::JoinClaims {
    classroom_protocol::JoinClaims {
        sub: user.to_string(),
        aud: classroom_protocol::JOIN_TOKEN_AUDIENCE.into(),
        iat: 0,
        exp: u64::MAX,
        jti: jti.into(),
        name: format!("user {user}"),
        room: RoomName::for_lesson(lesson),
        lesson,
        course,
        role,
        grants: Grants::for_role(role),
    }
}

#[cfg(test)]
mod attendance_tests;
#[cfg(test)]
mod board_persist_tests;
#[cfg(test)]
mod board_tests;
#[cfg(test)]
mod breakout_recording_tests;
#[cfg(test)]
mod breakout_tests;
#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod golive_tests;
#[cfg(test)]
mod persist_tests;
#[cfg(test)]
mod polls_tests;
#[cfg(test)]
mod roster_tests;
#[cfg(test)]
mod slides_tests;
#[cfg(test)]
mod test_class;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod voice_tests;
