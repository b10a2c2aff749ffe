//! Who is in the room: joining (and joining again after a dropped connection, or from a
//! second tab), the reconnect grace period, leaving, a moderator's removal, and the end of
//! the lesson, which closes everyone out.

use std::time::Instant;

use crate::media::EdgeId;

use classroom_protocol::signal::{
    LeaveReason, ParticipantId, ParticipantInfo, RecordingState, ServerMessage,
};
use classroom_protocol::{
    AccessDenied, CloseReason, ErrorCode, JoinClaims, PROTOCOL_VERSION, ParticipantRole, RoomName,
};

use super::{
    Actor, AttendanceEvent, ConnectionId, LessonEffect, MediaEffect, Output, Participant,
    RecordingEffect, Refusal, Room,
};

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

impl Room {
    /// [`super::Input::Join`]: the decision first (the connection becomes the participant's
    /// before anything is sent to it), then the join's outputs, then `ok` for `id` (after the
    /// `joined` snapshot, through the same connection).
    pub(super) fn join_input(
        &mut self,
        now: Instant,
        connection: ConnectionId,
        id: Option<u64>,
        claims: &JoinClaims,
        (opened_at, edge): (Option<Instant>, Option<EdgeId>),
        go_live: bool,
    ) -> Vec<Output> {
        match self.enter(now, claims, connection, go_live) {
            Ok((participant, outputs)) => {
                if let Some(opened_at) = opened_at {
                    self.media.connection_opened(connection, opened_at);
                }
                if let Some(edge) = edge {
                    self.media.connection_from_edge(connection, edge);
                }
                let mut step = vec![Output::JoinDecided {
                    connection,
                    result: Ok(participant),
                }];
                step.extend(outputs);
                if let Some(id) = id {
                    step.push(Output::Send {
                        to: participant,
                        message: ServerMessage::Ok { id },
                    });
                }
                step
            }
            Err(e) => vec![Output::JoinDecided {
                connection,
                result: Err(e),
            }],
        }
    }

    /// Admits the holder of verified join-token `claims` on `connection`. A user already in
    /// the room (a reconnect, or a second tab) takes their existing place.
    /// Joins as a client that does not hold the lesson back (a teacher's join makes it live).
    #[cfg(test)]
    pub(super) fn join(
        &mut self,
        claims: &JoinClaims,
        connection: ConnectionId,
    ) -> Result<(ParticipantId, Vec<Output>), JoinError> {
        let now = self.opened_at;
        self.enter(now, claims, connection, true)
    }

    /// `claims` join on `connection`; a teacher's join makes the lesson live when `go_live`.
    pub(super) fn enter(
        &mut self,
        now: Instant,
        claims: &JoinClaims,
        connection: ConnectionId,
        go_live: bool,
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
                let mut grants = claims.grants.clone();
                let extra = self.entry_sources(claims.role);
                if let Some(sources) = &extra {
                    grants.publish.clone_from(sources);
                }
                let info = ParticipantInfo {
                    id,
                    user_id: user,
                    name: claims.name.clone(),
                    role: claims.role,
                    on_stage: extra.is_some()
                        || matches!(
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
                        grants: grants.clone(),
                        base_grants: grants.clone(),
                        connection: Some(connection),
                        disconnected_at: None,
                    },
                );
                self.by_user.insert(user, id);
                out.push(Output::Attendance(AttendanceEvent::Joined {
                    user,
                    role: claims.role,
                }));
                out.push(Output::Broadcast {
                    except: Some(id),
                    message: ServerMessage::ParticipantJoined { participant: info },
                });
                if !grants.publish.is_empty() {
                    out.push(Output::Media(MediaEffect::PublishAllowed {
                        participant: id,
                        sources: grants.publish,
                    }));
                }
                self.restore_place(id, user, now, &mut out);
                id
            }
        };
        if go_live && claims.role == ParticipantRole::Teacher {
            self.go_live(&mut out);
        }
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
        if claims.grants.moderate
            && let Some(results) = self.poll_results_for_moderator()
        {
            out.push(Output::Send {
                to: id,
                message: results,
            });
        }
        self.breakouts_on_entry(self.now, id, &mut out);
        Ok((id, out))
    }

    /// Starts the lesson unless it has started: everyone hears it, every publisher's media
    /// starts flowing, and the rest of the server (lesson store, recorder, restreams) follows.
    pub(super) fn go_live(&mut self, out: &mut Vec<Output>) {
        if self.live {
            return;
        }
        self.live = true;
        out.push(Output::Lesson(LessonEffect::WentLive(self.lesson)));
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::LessonLive,
        });
        for (id, p) in &self.participants {
            if !p.grants.publish.is_empty() {
                out.push(Output::Media(MediaEffect::PublishAllowed {
                    participant: *id,
                    sources: p.grants.publish.clone(),
                }));
            }
        }
    }

    /// A moderator presses Go live.
    pub(super) fn go_live_by(
        &mut self,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("start the lesson")?;
        self.go_live(out);
        Ok(())
    }

    /// Whether `p`'s published media is forwarded: they may publish and the lesson is live.
    pub(super) fn forwards(&self, p: &Participant) -> bool {
        self.live && !p.grants.publish.is_empty()
    }

    /// The `joined` message for participant `id`, if present.
    pub(super) fn snapshot_for(&self, id: ParticipantId) -> Option<ServerMessage> {
        let p = self.participants.get(&id)?;
        let (you, grants) = (p.info.clone(), p.grants.clone());
        let (poll, poll_answer) = self.poll_for_joined(you.user_id);
        Some(ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            you,
            grants,
            participants: self.roster_for(id),
            participant_count: u32::try_from(self.participants.len()).unwrap_or(u32::MAX),
            partial_roster: self.roster.is_partial(),
            hands: self.hands.iter().copied().collect(),
            chat_locked: self.chat_locked,
            chat_history: self.chat.iter().cloned().collect(),
            recording: self.recording,
            slide: self.slide,
            live: self.live,
            board: Box::new(self.board()),
            poll: poll.map(Box::new),
            poll_answer: poll_answer.map(Box::new),
        })
    }

    /// The connection of a participant dropped. They keep their place for the reconnect
    /// grace period; [`Room::handle_timeout`] removes them after it.
    pub(super) fn disconnected(
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

    /// Removes participants whose connection has been gone longer than the grace period.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
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

    /// `leave`: gone for good, no resume.
    pub(super) fn leave(&mut self, participant: ParticipantId, out: &mut Vec<Output>) {
        self.remove(participant, LeaveReason::Left, CloseReason::Done, out);
    }

    /// A moderator removes a participant from the lesson: stored, so that no join token lets
    /// them back until a teacher does.
    pub(super) fn remove_participant(
        &mut self,
        actor: &Actor,
        participant: ParticipantId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("remove participants")?;
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
            by: actor.user,
        }));
        out.push(Output::Send {
            to: participant,
            message: ServerMessage::Removed { by: actor.id },
        });
        let why = CloseReason::Denied(AccessDenied::RemovedFromLesson);
        self.remove(participant, LeaveReason::Removed, why, out);
        Ok(())
    }

    /// A moderator ends the lesson for everyone.
    pub(super) fn end_lesson(
        &mut self,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("end the lesson")?;
        self.end(AccessDenied::LessonEnded, out);
        out.push(Output::Lesson(LessonEffect::Ended(self.lesson)));
        Ok(())
    }

    /// Ends the room for everyone: the lesson ended or was cancelled (`why`).
    pub(super) fn end(&mut self, why: AccessDenied, out: &mut Vec<Output>) {
        if self.recording != RecordingState::Off {
            self.set_recording(RecordingState::Off, RecordingEffect::Stopped, out);
        }
        self.ended = true;
        if let Some(plan) = self.breakouts.take() {
            out.push(Output::CloseRooms(plan.rooms().to_vec()));
        }
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

    pub(super) fn remove(
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
            out.push(Output::Attendance(AttendanceEvent::Left {
                user: p.info.user_id,
                reason,
            }));
        }
        if self.encoder.participant == Some(participant) {
            self.encoder.participant = None;
        }
        self.breakouts_on_leave(participant, out);
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
