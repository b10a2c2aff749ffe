//! The room: the live session of one lesson, as a state machine with no I/O. It takes
//! `now`, a participant and what they asked for, and returns what to send to whom and what
//! the media and lesson layers must do. The driver (`driver.rs`) owns one per room.
//!
//! Invariants:
//! - Every action is checked against the acting participant's current grants; a refused
//!   action changes nothing and answers an error naming the missing grant.
//! - A user has at most one participant per room; joining again takes the same place.
//! - Grants change only here (stage in and out); the media layer is told in the same step.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    ChatMessage, ClientMessage, LeaveReason, ParticipantId, ParticipantInfo, RecordingState,
    ServerMessage,
};
use classroom_protocol::{
    AccessDenied, CloseReason, CourseId, ErrorCode, Grants, JoinClaims, LessonId, PROTOCOL_VERSION,
    ParticipantRole, RoomName, TrackSource, UserId,
};

mod access;
mod encoder;

pub use encoder::EncoderIdentity;

/// Limits and timings of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub max_participants: usize,
    /// Chat messages kept for late joiners.
    pub chat_history: usize,
    pub max_chat_chars: usize,
    /// How long a dropped connection keeps its place before the participant is removed.
    pub reconnect_grace: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_participants: 500,
            chat_history: 100,
            max_chat_chars: 2000,
            reconnect_grace: Duration::from_secs(20),
        }
    }
}

/// One WebSocket connection; a participant's connection changes when it reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// What the room asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send to one participant's current connection.
    Send {
        to: ParticipantId,
        message: ServerMessage,
    },
    /// Send to every connected participant, but `except`.
    Broadcast {
        except: Option<ParticipantId>,
        message: ServerMessage,
    },
    /// Close a connection (after the messages before it were sent), saying why.
    Close {
        connection: ConnectionId,
        why: CloseReason,
    },
    /// The media layer must apply this in the same step.
    Media(MediaEffect),
    /// The lesson's state changes.
    Lesson(LessonEffect),
    /// The recording changes: the recorder must follow in the same step.
    Recording(RecordingEffect),
}

/// Changes to the lesson's recording, for the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingEffect {
    Started,
    Paused,
    Resumed,
    /// Stopped by a teacher or because the lesson ended: the replay can be prepared.
    Stopped,
}

/// Changes the media layer must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEffect {
    /// The participant may now publish these sources (on stage).
    PublishAllowed {
        participant: ParticipantId,
        sources: Vec<TrackSource>,
    },
    /// Publishing is revoked: stop forwarding the participant's tracks now.
    PublishRevoked {
        participant: ParticipantId,
    },
    /// Stop forwarding the participant's microphone until they unmute.
    AudioMuted {
        participant: ParticipantId,
    },
    AudioUnmuted {
        participant: ParticipantId,
    },
    /// The participant is gone: drop their peer connection.
    ParticipantGone {
        participant: ParticipantId,
    },
}

/// Changes to the lesson the room belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LessonEffect {
    /// A teacher is in the room: the lesson is live.
    WentLive(LessonId),
    Ended(LessonId),
    /// A moderator (`by`) removed `user` from the lesson: it must be stored, so that no join
    /// token lets them back until a teacher does.
    UserRemoved {
        lesson: LessonId,
        user: UserId,
        by: UserId,
    },
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the token is for room {0}, not this one")]
    WrongRoom(RoomName),
    #[error("the lesson has ended")]
    LessonEnded,
    #[error("a teacher removed you from this lesson; ask them to let you back in")]
    Removed,
    #[error("the room is full ({0} participants)")]
    RoomFull(usize),
    #[error("the join token does not allow entering the room")]
    NotGranted,
}

impl JoinError {
    pub fn code(&self) -> ErrorCode {
        match self {
            JoinError::WrongRoom(_) => ErrorCode::WrongRoom,
            JoinError::LessonEnded => ErrorCode::LessonEnded,
            JoinError::Removed => AccessDenied::RemovedFromLesson.error_code(),
            JoinError::RoomFull(_) => ErrorCode::RoomFull,
            JoinError::NotGranted => ErrorCode::MissingGrant,
        }
    }

    /// The access the refusal denies, whose close code the connection closes with.
    pub fn denied(&self) -> Option<AccessDenied> {
        match self {
            JoinError::Removed => Some(AccessDenied::RemovedFromLesson),
            JoinError::LessonEnded => Some(AccessDenied::LessonEnded),
            _ => None,
        }
    }
}

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
    config: RoomConfig,
    opened_at: Instant,
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
    encoder: encoder::EncoderSlot,
}

impl Room {
    pub fn new(name: RoomName, lesson: LessonId, config: RoomConfig, now: Instant) -> Self {
        Room {
            name,
            lesson,
            config,
            opened_at: now,
            participants: BTreeMap::new(),
            by_user: HashMap::new(),
            next_participant: 1,
            hands: VecDeque::new(),
            chat: VecDeque::new(),
            next_chat_seq: 1,
            chat_locked: false,
            course: None,
            removed_users: HashSet::new(),
            live: false,
            ended: false,
            recording: RecordingState::Off,
            encoder: encoder::EncoderSlot::default(),
        }
    }

    pub fn lesson(&self) -> LessonId {
        self.lesson
    }

    /// Whether the lesson is being recorded (or paused) now.
    pub fn recording(&self) -> RecordingState {
        self.recording
    }

    /// Everyone present, as others see them.
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.participants.values().map(|p| p.info.clone()).collect()
    }

    /// Starts recording on the server's initiative (the course records by default). Nothing
    /// happens when already recording or ended.
    pub fn start_recording(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.ended && self.recording == RecordingState::Off {
            self.set_recording(
                RecordingState::Recording,
                RecordingEffect::Started,
                &mut out,
            );
        }
        out
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Participants present, connected or waiting to reconnect.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is connected (the driver may close an idle room).
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

    /// Admits the holder of verified join-token `claims` on `connection`. A user already in
    /// the room (a reconnect, or a second tab) takes their existing place.
    pub fn join(
        &mut self,
        claims: &JoinClaims,
        connection: ConnectionId,
    ) -> Result<(ParticipantId, Vec<Output>), JoinError> {
        if claims.room != self.name {
            return Err(JoinError::WrongRoom(claims.room.clone()));
        }
        if self.ended {
            return Err(JoinError::LessonEnded);
        }
        if !claims.grants.join {
            return Err(JoinError::NotGranted);
        }
        let user = claims.user().ok_or(JoinError::NotGranted)?;
        if self.removed_users.contains(&user) {
            return Err(JoinError::Removed);
        }
        self.course = Some(claims.course);
        let mut out = Vec::new();
        let id = match self.by_user.get(&user).copied() {
            Some(id) => {
                let Some(p) = self.participants.get_mut(&id) else {
                    return Err(JoinError::NotGranted);
                };
                if let Some(old) = p.connection.replace(connection) {
                    // The same user joined from elsewhere: the newer connection wins.
                    out.push(Output::Close {
                        connection: old,
                        why: CloseReason::Replaced,
                    });
                }
                p.disconnected_at = None;
                p.info.reconnecting = false;
                out.push(Output::Broadcast {
                    except: Some(id),
                    message: ServerMessage::ParticipantUpdated {
                        participant: p.info.clone(),
                    },
                });
                id
            }
            None => {
                if self.participants.len() >= self.config.max_participants {
                    return Err(JoinError::RoomFull(self.config.max_participants));
                }
                let id = ParticipantId(self.next_participant);
                self.next_participant += 1;
                let info = ParticipantInfo {
                    id,
                    user_id: user,
                    name: claims.name.clone(),
                    role: claims.role,
                    on_stage: matches!(
                        claims.role,
                        ParticipantRole::Teacher | ParticipantRole::Assistant
                    ),
                    hand_raised: false,
                    muted: false,
                    reconnecting: false,
                };
                self.participants.insert(
                    id,
                    Participant {
                        info: info.clone(),
                        grants: claims.grants.clone(),
                        base_grants: claims.grants.clone(),
                        connection: Some(connection),
                        disconnected_at: None,
                    },
                );
                self.by_user.insert(user, id);
                out.push(Output::Broadcast {
                    except: Some(id),
                    message: ServerMessage::ParticipantJoined { participant: info },
                });
                if !claims.grants.publish.is_empty() {
                    out.push(Output::Media(MediaEffect::PublishAllowed {
                        participant: id,
                        sources: claims.grants.publish.clone(),
                    }));
                }
                id
            }
        };
        if let Some(snapshot) = self.snapshot_for(id) {
            out.push(Output::Send {
                to: id,
                message: snapshot,
            });
        }
        if claims.grants.moderate
            && let Some(news) = self.encoder_news()
        {
            out.push(Output::Send {
                to: id,
                message: news,
            });
        }
        if claims.role == ParticipantRole::Teacher && !self.live {
            self.live = true;
            out.push(Output::Lesson(LessonEffect::WentLive(self.lesson)));
        }
        Ok((id, out))
    }

    /// The `joined` message for participant `id`, if present.
    fn snapshot_for(&self, id: ParticipantId) -> Option<ServerMessage> {
        let p = self.participants.get(&id)?;
        let (you, grants) = (p.info.clone(), p.grants.clone());
        Some(ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            you,
            grants,
            participants: self.participants.values().map(|p| p.info.clone()).collect(),
            hands: self.hands.iter().copied().collect(),
            chat_locked: self.chat_locked,
            chat_history: self.chat.iter().cloned().collect(),
            recording: self.recording,
        })
    }

    /// The connection of a participant dropped. They keep their place for the reconnect
    /// grace period; [`Room::handle_timeout`] removes them after it.
    pub fn disconnected(
        &mut self,
        now: Instant,
        id: ParticipantId,
        connection: ConnectionId,
    ) -> Vec<Output> {
        let Some(p) = self.participants.get_mut(&id) else {
            return Vec::new();
        };
        if p.connection != Some(connection) {
            return Vec::new(); // an older connection, already replaced
        }
        p.connection = None;
        p.disconnected_at = Some(now);
        p.info.reconnecting = true;
        vec![Output::Broadcast {
            except: Some(id),
            message: ServerMessage::ParticipantUpdated {
                participant: p.info.clone(),
            },
        }]
    }

    /// When [`Room::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.participants
            .values()
            .filter_map(|p| p.disconnected_at)
            .min()
            .map(|at| at + self.config.reconnect_grace)
    }

    /// Removes participants whose connection has been gone longer than the grace period.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let expired: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| {
                p.disconnected_at
                    .is_some_and(|at| now >= at + self.config.reconnect_grace)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in expired {
            self.remove(id, LeaveReason::TimedOut, CloseReason::Done, &mut out);
        }
        out
    }

    /// Carries out `message` from participant `from`. `id` is the request id to answer.
    pub fn handle(
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
        let moderator = actor.moderates();
        let may_chat = actor.grants.chat;
        let may_record = actor.grants.record;
        let name = actor.info.name.clone();
        let actor_user = actor.info.user_id;
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
            ClientMessage::RaiseHand => {
                if !self.hands.contains(&from) {
                    self.hands.push_back(from);
                    self.set_hand(from, true, out);
                }
            }
            ClientMessage::LowerHand => {
                if self.hands.contains(&from) {
                    self.hands.retain(|p| *p != from);
                    self.set_hand(from, false, out);
                }
            }
            ClientMessage::Chat { text } => {
                if !may_chat {
                    return Err(Refusal::grant("chat", "send chat messages"));
                }
                if self.chat_locked && !moderator {
                    return Err(Refusal::new(
                        ErrorCode::ChatLocked,
                        "the teacher has locked the chat",
                    ));
                }
                let text = text.trim();
                if text.is_empty() {
                    return Err(Refusal::new(
                        ErrorCode::InvalidMessage,
                        "a chat message cannot be empty",
                    ));
                }
                if text.chars().count() > self.config.max_chat_chars {
                    return Err(Refusal::new(
                        ErrorCode::InvalidMessage,
                        format!(
                            "a chat message has at most {} characters",
                            self.config.max_chat_chars
                        ),
                    ));
                }
                let message = ChatMessage {
                    seq: self.next_chat_seq,
                    from,
                    name,
                    text: text.to_string(),
                    at_ms: u64::try_from(now.saturating_duration_since(self.opened_at).as_millis())
                        .unwrap_or(u64::MAX),
                };
                self.next_chat_seq += 1;
                if self.chat.len() >= self.config.chat_history {
                    self.chat.pop_front();
                }
                self.chat.push_back(message.clone());
                out.push(Output::Broadcast {
                    except: None,
                    message: ServerMessage::Chat { message },
                });
            }
            ClientMessage::InviteToStage { participant } => {
                require_moderator(moderator, "bring participants on stage")?;
                self.not_the_encoder(participant)?;
                let target = self.target_mut(participant)?;
                if target.info.on_stage {
                    return Ok(());
                }
                let sources = vec![TrackSource::Camera, TrackSource::Microphone];
                target.info.on_stage = true;
                for source in &sources {
                    if !target.grants.publish.contains(source) {
                        target.grants.publish.push(*source);
                    }
                }
                let grants = target.grants.clone();
                out.push(Output::Media(MediaEffect::PublishAllowed {
                    participant,
                    sources: grants.publish.clone(),
                }));
                out.push(Output::Send {
                    to: participant,
                    message: ServerMessage::GrantsChanged { grants },
                });
                if self.hands.contains(&participant) {
                    self.hands.retain(|p| *p != participant);
                    self.set_hand(participant, false, out);
                } else {
                    self.announce(participant, out);
                }
            }
            ClientMessage::RemoveFromStage { participant } => {
                require_moderator(moderator, "take participants off stage")?;
                self.not_the_encoder(participant)?;
                let target = self.target_mut(participant)?;
                if !target.info.on_stage || target.base_grants.moderate {
                    return Err(Refusal::new(
                        ErrorCode::NotOnStage,
                        "that participant is not a student on stage",
                    ));
                }
                target.info.on_stage = false;
                target.grants = target.base_grants.clone();
                let grants = target.grants.clone();
                // Media first: forwarding stops before anyone hears of it.
                out.push(Output::Media(MediaEffect::PublishRevoked { participant }));
                out.push(Output::Send {
                    to: participant,
                    message: ServerMessage::GrantsChanged { grants },
                });
                self.announce(participant, out);
            }
            ClientMessage::Mute { participant } => {
                require_moderator(moderator, "mute participants")?;
                self.not_the_encoder(participant)?;
                self.target_mut(participant)?;
                self.mute(from, participant, out);
            }
            ClientMessage::MuteAll => {
                require_moderator(moderator, "mute everyone")?;
                let others: Vec<_> = self
                    .participants
                    .keys()
                    .copied()
                    .filter(|p| *p != from && !self.is_encoder(*p))
                    .collect();
                for participant in others {
                    self.mute(from, participant, out);
                }
            }
            ClientMessage::Unmute => {
                if let Some(p) = self.participants.get_mut(&from)
                    && p.info.muted
                {
                    p.info.muted = false;
                    out.push(Output::Media(MediaEffect::AudioUnmuted {
                        participant: from,
                    }));
                    self.announce(from, out);
                }
            }
            ClientMessage::RemoveParticipant { participant } => {
                require_moderator(moderator, "remove participants")?;
                self.not_the_encoder(participant)?;
                let target = self.target_mut(participant)?;
                if target.base_grants.moderate {
                    return Err(Refusal::new(
                        ErrorCode::CannotRemoveModerator,
                        "teachers and assistants cannot be removed",
                    ));
                }
                let user = target.info.user_id;
                self.removed_users.insert(user);
                out.push(Output::Lesson(LessonEffect::UserRemoved {
                    lesson: self.lesson,
                    user,
                    by: actor_user,
                }));
                out.push(Output::Send {
                    to: participant,
                    message: ServerMessage::Removed { by: from },
                });
                let why = CloseReason::Denied(AccessDenied::RemovedFromLesson);
                self.remove(participant, LeaveReason::Removed, why, out);
            }
            ClientMessage::LockChat { locked } => {
                require_moderator(moderator, "lock the chat")?;
                if self.chat_locked != locked {
                    self.chat_locked = locked;
                    out.push(Output::Broadcast {
                        except: None,
                        message: ServerMessage::ChatLocked { locked },
                    });
                }
            }
            ClientMessage::StartRecording => {
                self.change_recording(may_record, RecordingEffect::Started, out)?;
            }
            ClientMessage::PauseRecording => {
                self.change_recording(may_record, RecordingEffect::Paused, out)?;
            }
            ClientMessage::ResumeRecording => {
                self.change_recording(may_record, RecordingEffect::Resumed, out)?;
            }
            ClientMessage::StopRecording => {
                self.change_recording(may_record, RecordingEffect::Stopped, out)?;
            }
            ClientMessage::EndLesson => {
                require_moderator(moderator, "end the lesson")?;
                self.end(AccessDenied::LessonEnded, out);
                out.push(Output::Lesson(LessonEffect::Ended(self.lesson)));
            }
            ClientMessage::Leave => self.remove(from, LeaveReason::Left, CloseReason::Done, out),
            // The driver negotiates media with its media port; without one there is no media.
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

    /// Ends the room for everyone: the lesson ended or was cancelled (`why`).
    fn end(&mut self, why: AccessDenied, out: &mut Vec<Output>) {
        if self.recording != RecordingState::Off {
            self.set_recording(RecordingState::Off, RecordingEffect::Stopped, out);
        }
        self.ended = true;
        // A cancelled lesson never ran: its close code alone says so.
        if why == AccessDenied::LessonEnded {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::LessonEnded,
            });
        }
        let everyone: Vec<_> = self.participants.keys().copied().collect();
        for participant in everyone {
            let close = CloseReason::Denied(why);
            self.remove(participant, LeaveReason::LessonEnded, close, out);
        }
    }

    /// A teacher's recording control: allowed only with the `record` grant, and only from
    /// the state it applies to (start when off, pause when recording, ...).
    fn change_recording(
        &mut self,
        may_record: bool,
        effect: RecordingEffect,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        use RecordingState::{Off, Paused, Recording};
        if !may_record {
            return Err(Refusal::grant("record", "record the lesson"));
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
        self.set_recording(next, effect, out);
        Ok(())
    }

    /// The recorder is told first, then everyone sees the indicator.
    fn set_recording(
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

    fn target_mut(&mut self, participant: ParticipantId) -> Result<&mut Participant, Refusal> {
        self.participants.get_mut(&participant).ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownParticipant,
                format!("there is no participant {participant} in this room"),
            )
        })
    }

    fn set_hand(&mut self, participant: ParticipantId, raised: bool, out: &mut Vec<Output>) {
        if let Some(p) = self.participants.get_mut(&participant) {
            p.info.hand_raised = raised;
        }
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Hands {
                hands: self.hands.iter().copied().collect(),
            },
        });
        self.announce(participant, out);
    }

    fn mute(&mut self, by: ParticipantId, participant: ParticipantId, out: &mut Vec<Output>) {
        let Some(p) = self.participants.get_mut(&participant) else {
            return;
        };
        if p.info.muted {
            return;
        }
        p.info.muted = true;
        out.push(Output::Media(MediaEffect::AudioMuted { participant }));
        out.push(Output::Send {
            to: participant,
            message: ServerMessage::Muted {
                source: TrackSource::Microphone,
                by,
            },
        });
        self.announce(participant, out);
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

    fn remove(
        &mut self,
        participant: ParticipantId,
        reason: LeaveReason,
        close: CloseReason,
        out: &mut Vec<Output>,
    ) {
        let Some(p) = self.participants.remove(&participant) else {
            return;
        };
        // The encoder shares its teacher's user id but is not theirs in `by_user`.
        if self.by_user.get(&p.info.user_id) == Some(&participant) {
            self.by_user.remove(&p.info.user_id);
        }
        if self.encoder.participant == Some(participant) {
            self.encoder.participant = None;
        }
        let had_hand = self.hands.contains(&participant);
        self.hands.retain(|h| *h != participant);
        out.push(Output::Media(MediaEffect::ParticipantGone { participant }));
        if let Some(connection) = p.connection {
            out.push(Output::Close {
                connection,
                why: close,
            });
        }
        if reason != LeaveReason::LessonEnded {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::ParticipantLeft {
                    participant,
                    reason,
                },
            });
            if had_hand {
                out.push(Output::Broadcast {
                    except: None,
                    message: ServerMessage::Hands {
                        hands: self.hands.iter().copied().collect(),
                    },
                });
            }
        }
    }
}

fn require_moderator(moderator: bool, action: &str) -> Result<(), Refusal> {
    if moderator {
        Ok(())
    } else {
        Err(Refusal::grant("moderate", action))
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
) -> JoinClaims {
    JoinClaims {
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
mod tests {
    use super::*;
    use classroom_protocol::AccessChange;

    const ROOM: LessonId = LessonId(7);

    fn claims(user: i64, role: ParticipantRole, jti: &str) -> JoinClaims {
        test_claims(user, role, ROOM, CourseId(1), jti)
    }

    struct Class {
        room: Room,
        now: Instant,
        teacher: ParticipantId,
        ann: ParticipantId,
        bob: ParticipantId,
    }

    fn class() -> Class {
        let now = Instant::now();
        let mut room = Room::new(RoomName::for_lesson(ROOM), ROOM, RoomConfig::default(), now);
        let (teacher, out) = room
            .join(&claims(1, ParticipantRole::Teacher, "t"), ConnectionId(1))
            .expect("teacher joins");
        assert!(
            out.contains(&Output::Lesson(LessonEffect::WentLive(ROOM))),
            "the teacher makes it live"
        );
        let (ann, _) = room
            .join(&claims(2, ParticipantRole::Student, "a"), ConnectionId(2))
            .expect("ann joins");
        let (bob, _) = room
            .join(&claims(3, ParticipantRole::Student, "b"), ConnectionId(3))
            .expect("bob joins");
        Class {
            room,
            now,
            teacher,
            ann,
            bob,
        }
    }

    fn error_code(out: &[Output]) -> Option<(ErrorCode, Option<String>)> {
        out.iter().find_map(|o| match o {
            Output::Send {
                message: ServerMessage::Error { code, grant, .. },
                ..
            } => Some((*code, grant.clone())),
            _ => None,
        })
    }

    fn broadcasts(out: &[Output]) -> Vec<&ServerMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Broadcast { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn joiners_get_the_room_and_others_hear_of_them() {
        let mut c = class();
        c.room.handle(
            c.now,
            c.ann,
            None,
            ClientMessage::Chat { text: "hi".into() },
        );
        let (carl, out) = c
            .room
            .join(&claims(4, ParticipantRole::Student, "c"), ConnectionId(4))
            .expect("joins");
        let snapshot = out.iter().find_map(|o| match o {
            Output::Send {
                to,
                message:
                    ServerMessage::Joined {
                        participants,
                        chat_history,
                        grants,
                        ..
                    },
            } if *to == carl => Some((participants.len(), chat_history.len(), grants.clone())),
            _ => None,
        });
        assert_eq!(
            snapshot,
            Some((4, 1, Grants::for_role(ParticipantRole::Student))),
            "late joiners get the chat history"
        );
        assert!(matches!(
            broadcasts(&out)[..],
            [ServerMessage::ParticipantJoined { .. }]
        ));
        assert!(
            !out.iter().any(|o| matches!(o, Output::Lesson(_))),
            "only the first teacher makes it live"
        );
    }

    #[test]
    fn hands_queue_in_order_and_stage_grants_publish_live() {
        let mut c = class();
        c.room.handle(c.now, c.bob, None, ClientMessage::RaiseHand);
        let out = c
            .room
            .handle(c.now, c.ann, Some(5), ClientMessage::RaiseHand);
        assert!(broadcasts(&out).contains(&&ServerMessage::Hands {
            hands: vec![c.bob, c.ann]
        }));
        assert!(out.contains(&Output::Send {
            to: c.ann,
            message: ServerMessage::Ok { id: 5 }
        }));

        // Students cannot run the stage; nothing changes.
        let refused = c.room.handle(
            c.now,
            c.bob,
            Some(6),
            ClientMessage::InviteToStage { participant: c.bob },
        );
        assert_eq!(
            error_code(&refused),
            Some((ErrorCode::MissingGrant, Some("moderate".into())))
        );
        assert_eq!(refused.len(), 1);
        assert!(c.room.grants(c.bob).is_some_and(|g| g.publish.is_empty()));

        let out = c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::InviteToStage { participant: c.ann },
        );
        assert_eq!(
            out.first(),
            Some(&Output::Media(MediaEffect::PublishAllowed {
                participant: c.ann,
                sources: vec![TrackSource::Camera, TrackSource::Microphone]
            }))
        );
        assert!(
            broadcasts(&out).contains(&&ServerMessage::Hands { hands: vec![c.bob] }),
            "on stage lowers the hand"
        );
        assert!(
            c.room
                .grants(c.ann)
                .is_some_and(|g| g.may_publish(TrackSource::Camera))
        );

        let out = c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::RemoveFromStage { participant: c.ann },
        );
        assert_eq!(
            out.first(),
            Some(&Output::Media(MediaEffect::PublishRevoked {
                participant: c.ann
            })),
            "media first"
        );
        assert!(c.room.grants(c.ann).is_some_and(|g| g.publish.is_empty()));
        let again = c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::RemoveFromStage { participant: c.ann },
        );
        assert_eq!(error_code(&again).map(|e| e.0), Some(ErrorCode::NotOnStage));
        let unknown = c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::InviteToStage {
                participant: ParticipantId(99),
            },
        );
        assert_eq!(
            error_code(&unknown).map(|e| e.0),
            Some(ErrorCode::UnknownParticipant)
        );
    }

    #[test]
    fn chat_lock_and_limits() {
        let mut c = class();
        let out = c
            .room
            .handle(c.now, c.ann, None, ClientMessage::LockChat { locked: true });
        assert_eq!(error_code(&out).map(|e| e.0), Some(ErrorCode::MissingGrant));
        c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::LockChat { locked: true },
        );
        let out = c.room.handle(
            c.now,
            c.ann,
            Some(1),
            ClientMessage::Chat {
                text: "psst".into(),
            },
        );
        assert_eq!(error_code(&out).map(|e| e.0), Some(ErrorCode::ChatLocked));
        let out = c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::Chat {
                text: "quiet please".into(),
            },
        );
        assert!(
            matches!(broadcasts(&out)[..], [ServerMessage::Chat { .. }]),
            "moderators still chat"
        );
        c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::LockChat { locked: false },
        );
        let out = c.room.handle(
            c.now,
            c.ann,
            None,
            ClientMessage::Chat {
                text: "x".repeat(2001),
            },
        );
        assert_eq!(
            error_code(&out).map(|e| e.0),
            Some(ErrorCode::InvalidMessage)
        );
        let out = c.room.handle(
            c.now,
            c.ann,
            None,
            ClientMessage::Chat { text: "  ".into() },
        );
        assert_eq!(
            error_code(&out).map(|e| e.0),
            Some(ErrorCode::InvalidMessage)
        );
        for i in 0..150 {
            c.room.handle(
                c.now,
                c.ann,
                None,
                ClientMessage::Chat {
                    text: format!("m{i}"),
                },
            );
        }
        let (_, out) = c
            .room
            .join(&claims(9, ParticipantRole::Student, "z"), ConnectionId(9))
            .expect("joins");
        let history = out.iter().find_map(|o| match o {
            Output::Send {
                message: ServerMessage::Joined { chat_history, .. },
                ..
            } => Some(chat_history.clone()),
            _ => None,
        });
        let history = history.expect("a snapshot");
        assert_eq!(history.len(), 100, "history is bounded");
        assert_eq!(history.last().map(|m| m.text.as_str()), Some("m149"));
    }

    #[test]
    fn mute_and_a_removal_that_holds_against_new_tokens_until_let_back_in() {
        let mut c = class();
        let out = c
            .room
            .handle(c.now, c.teacher, None, ClientMessage::MuteAll);
        let muted: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Media(MediaEffect::AudioMuted { participant }) => Some(*participant),
                _ => None,
            })
            .collect();
        assert_eq!(muted, vec![c.ann, c.bob], "everyone but the teacher");
        let out = c.room.handle(c.now, c.ann, None, ClientMessage::Unmute);
        assert!(out.contains(&Output::Media(MediaEffect::AudioUnmuted {
            participant: c.ann
        })));

        let refused = c.room.handle(
            c.now,
            c.bob,
            None,
            ClientMessage::RemoveParticipant {
                participant: c.teacher,
            },
        );
        assert_eq!(
            error_code(&refused).map(|e| e.0),
            Some(ErrorCode::MissingGrant)
        );
        let out = c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::RemoveParticipant { participant: c.bob },
        );
        assert!(out.contains(&Output::Send {
            to: c.bob,
            message: ServerMessage::Removed { by: c.teacher }
        }));
        assert!(out.contains(&Output::Close {
            connection: ConnectionId(3),
            why: CloseReason::Denied(AccessDenied::RemovedFromLesson),
        }));
        assert!(out.contains(&Output::Media(MediaEffect::ParticipantGone {
            participant: c.bob
        })));
        assert!(
            out.contains(&Output::Lesson(LessonEffect::UserRemoved {
                lesson: ROOM,
                user: UserId(3),
                by: UserId(1),
            })),
            "the removal is to be stored"
        );
        for token in ["b", "a fresh one"] {
            assert_eq!(
                c.room
                    .join(
                        &claims(3, ParticipantRole::Student, token),
                        ConnectionId(30)
                    )
                    .err(),
                Some(JoinError::Removed)
            );
        }
        // Let back in for another lesson: still out of this one.
        let elsewhere = AccessChange::Readmitted {
            lesson: LessonId(8),
            user: UserId(3),
        };
        assert!(c.room.access_changed(elsewhere).is_empty());
        assert!(
            c.room
                .join(&claims(3, ParticipantRole::Student, "b2"), ConnectionId(31))
                .is_err()
        );
        let back = AccessChange::Readmitted {
            lesson: ROOM,
            user: UserId(3),
        };
        c.room.access_changed(back);
        assert!(
            c.room
                .join(&claims(3, ParticipantRole::Student, "b2"), ConnectionId(31))
                .is_ok(),
            "let back in"
        );
    }

    #[test]
    fn a_dropped_connection_resumes_its_place_or_times_out() {
        let mut c = class();
        c.room.handle(
            c.now,
            c.teacher,
            None,
            ClientMessage::InviteToStage { participant: c.ann },
        );
        let out = c.room.disconnected(c.now, c.ann, ConnectionId(2));
        assert!(
            matches!(broadcasts(&out)[..], [ServerMessage::ParticipantUpdated { participant }] if participant.reconnecting)
        );
        assert_eq!(c.room.poll_timeout(), Some(c.now + Duration::from_secs(20)));

        // Back within the grace period: same participant, still on stage, no duplicate.
        let later = c.now + Duration::from_secs(5);
        let (again, _) = c
            .room
            .join(
                &claims(2, ParticipantRole::Student, "a-new"),
                ConnectionId(20),
            )
            .expect("resumes");
        assert_eq!(again, c.ann);
        assert_eq!(c.room.participant_count(), 3);
        assert!(
            c.room
                .grants(c.ann)
                .is_some_and(|g| g.may_publish(TrackSource::Camera))
        );
        assert_eq!(c.room.poll_timeout(), None);
        // The old connection's late close changes nothing.
        assert!(
            c.room
                .disconnected(later, c.ann, ConnectionId(2))
                .is_empty()
        );

        c.room.disconnected(later, c.bob, ConnectionId(3));
        assert!(
            c.room
                .handle_timeout(later + Duration::from_secs(19))
                .is_empty()
        );
        let out = c.room.handle_timeout(later + Duration::from_secs(20));
        assert!(broadcasts(&out).contains(&&ServerMessage::ParticipantLeft {
            participant: c.bob,
            reason: LeaveReason::TimedOut
        }));
        assert_eq!(c.room.participant_count(), 2);
    }

    #[test]
    fn a_second_tab_replaces_the_first_connection() {
        let mut c = class();
        let (same, out) = c
            .room
            .join(&claims(2, ParticipantRole::Student, "a2"), ConnectionId(22))
            .expect("joins");
        assert_eq!(same, c.ann);
        assert!(out.contains(&Output::Close {
            connection: ConnectionId(2),
            why: CloseReason::Replaced,
        }));
        assert_eq!(c.room.participant_count(), 3);
    }

    #[test]
    fn ending_the_lesson_closes_everyone_and_refuses_joins() {
        let mut c = class();
        let refused = c
            .room
            .handle(c.now, c.ann, Some(1), ClientMessage::EndLesson);
        assert_eq!(
            error_code(&refused).map(|e| e.0),
            Some(ErrorCode::MissingGrant)
        );
        let out = c
            .room
            .handle(c.now, c.teacher, Some(2), ClientMessage::EndLesson);
        assert!(out.contains(&Output::Lesson(LessonEffect::Ended(ROOM))));
        let closed = out
            .iter()
            .filter(|o| matches!(o, Output::Close { .. }))
            .count();
        assert_eq!(closed, 3);
        assert!(c.room.is_ended() && c.room.is_empty());
        assert_eq!(
            c.room
                .join(&claims(5, ParticipantRole::Student, "e"), ConnectionId(5))
                .err(),
            Some(JoinError::LessonEnded)
        );
    }

    #[test]
    fn only_teachers_record_and_everyone_sees_it() {
        let mut c = class();
        let refused = c
            .room
            .handle(c.now, c.ann, Some(1), ClientMessage::StartRecording);
        assert_eq!(
            error_code(&refused),
            Some((ErrorCode::MissingGrant, Some("record".into())))
        );
        let wrong = c
            .room
            .handle(c.now, c.teacher, Some(2), ClientMessage::PauseRecording);
        assert_eq!(
            error_code(&wrong).map(|e| e.0),
            Some(ErrorCode::RecordingState)
        );
        for (message, effect, state) in [
            (
                ClientMessage::StartRecording,
                RecordingEffect::Started,
                RecordingState::Recording,
            ),
            (
                ClientMessage::PauseRecording,
                RecordingEffect::Paused,
                RecordingState::Paused,
            ),
            (
                ClientMessage::ResumeRecording,
                RecordingEffect::Resumed,
                RecordingState::Recording,
            ),
            (
                ClientMessage::StopRecording,
                RecordingEffect::Stopped,
                RecordingState::Off,
            ),
        ] {
            let out = c.room.handle(c.now, c.teacher, None, message);
            assert_eq!(
                out.first(),
                Some(&Output::Recording(effect)),
                "recorder first"
            );
            assert!(broadcasts(&out).contains(&&ServerMessage::Recording { state }));
            assert_eq!(c.room.recording(), state);
        }
        // The course's default starts it; ending the lesson stops it before the end.
        assert!(!c.room.start_recording().is_empty());
        assert!(c.room.start_recording().is_empty(), "once");
        let out = c
            .room
            .handle(c.now, c.teacher, None, ClientMessage::EndLesson);
        let stopped = out
            .iter()
            .position(|o| o == &Output::Recording(RecordingEffect::Stopped));
        let ended = out
            .iter()
            .position(|o| matches!(o, Output::Lesson(LessonEffect::Ended(_))));
        assert!(stopped.is_some() && stopped < ended, "{out:?}");
    }

    #[test]
    fn joins_are_checked() {
        let mut c = class();
        let mut elsewhere = claims(8, ParticipantRole::Student, "x");
        elsewhere.room = RoomName::for_lesson(LessonId(8));
        assert!(matches!(
            c.room.join(&elsewhere, ConnectionId(8)),
            Err(JoinError::WrongRoom(_))
        ));
        let mut small = Room::new(
            RoomName::for_lesson(ROOM),
            ROOM,
            RoomConfig {
                max_participants: 1,
                ..RoomConfig::default()
            },
            c.now,
        );
        assert!(
            small
                .join(&claims(1, ParticipantRole::Student, "1"), ConnectionId(1))
                .is_ok()
        );
        assert_eq!(
            small
                .join(&claims(2, ParticipantRole::Student, "2"), ConnectionId(2))
                .err(),
            Some(JoinError::RoomFull(1))
        );
        let out = c
            .room
            .handle(c.now, ParticipantId(404), Some(1), ClientMessage::Ping);
        assert_eq!(error_code(&out).map(|e| e.0), Some(ErrorCode::NotJoined));
    }
}
