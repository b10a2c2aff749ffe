//! The lesson's RTMP encoder (OBS, a hardware encoder) as a participant of the room.
//!
//! An encoder has no WebSocket: the ingest tells the room when it starts and stops. While it
//! publishes it is a participant of its own (so that students see whose media arrives, with
//! the source `encoder`), with the role of a teacher and the one grant `publish:encoder`.
//! Like a teacher joining, an encoder starting makes the lesson live: a teacher who starts
//! OBS before opening the lesson page expects the class to see the stream. Moderators hear
//! of every state change (and a refused publish, with its reason) through `encoder` messages.
//!
//! Moderation actions aimed at the encoder (mute, stage, remove) are refused: it is started
//! and stopped from the encoder itself.

use classroom_protocol::signal::{EncoderState, LeaveReason, ParticipantId, ParticipantInfo};
use classroom_protocol::{Grants, ParticipantRole, TrackSource, UserId};

use super::{JoinError, LessonEffect, Output, Participant, Refusal, Room, ServerMessage};

/// Who an encoder publishes as: the teacher who holds the stream key, under a name saying it
/// is their encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderIdentity {
    pub user: UserId,
    pub name: String,
}

/// The lesson's encoder, as the room knows it.
#[derive(Debug, Clone, Default)]
pub(super) struct EncoderSlot {
    /// Its participant while it publishes.
    pub(super) participant: Option<ParticipantId>,
    /// The last state moderators were told, for moderators who join later.
    pub(super) status: Option<(EncoderState, Option<String>)>,
}

impl Room {
    /// An encoder starts publishing (or resumes after a reconnect): returns its participant.
    /// Refused when the lesson has ended.
    pub fn encoder_started(
        &mut self,
        identity: &EncoderIdentity,
    ) -> Result<(ParticipantId, Vec<Output>), JoinError> {
        if self.ended {
            return Err(JoinError::LessonEnded);
        }
        let mut out = Vec::new();
        let id = match self.encoder.participant {
            Some(id) if self.participants.contains_key(&id) => id,
            _ => {
                if self.participants.len() >= self.config.max_participants {
                    return Err(JoinError::RoomFull(self.config.max_participants));
                }
                let id = ParticipantId(self.next_participant);
                self.next_participant += 1;
                let info = ParticipantInfo {
                    id,
                    user_id: identity.user,
                    name: identity.name.clone(),
                    role: ParticipantRole::Teacher,
                    on_stage: true,
                    hand_raised: false,
                    muted: false,
                    reconnecting: false,
                };
                let grants = Grants {
                    join: true,
                    subscribe: false,
                    publish: vec![TrackSource::Encoder],
                    chat: false,
                    moderate: false,
                    record: false,
                };
                // Not in `by_user`: the teacher it belongs to joins as a participant of its own.
                self.participants.insert(
                    id,
                    Participant {
                        info: info.clone(),
                        grants: grants.clone(),
                        base_grants: grants,
                        token_id: String::new(),
                        connection: None,
                        disconnected_at: None,
                    },
                );
                self.encoder.participant = Some(id);
                out.push(Output::Broadcast {
                    except: Some(id),
                    message: ServerMessage::ParticipantJoined { participant: info },
                });
                id
            }
        };
        if !self.live {
            self.live = true;
            out.push(Output::Lesson(LessonEffect::WentLive(self.lesson)));
        }
        self.encoder_status(EncoderState::Live, None, &mut out);
        Ok((id, out))
    }

    /// The encoder's connection dropped and may come back, it stopped, or a publish was
    /// refused. Stopping removes its participant.
    pub fn encoder_changed(&mut self, state: EncoderState, reason: Option<String>) -> Vec<Output> {
        let mut out = Vec::new();
        if state == EncoderState::Stopped
            && let Some(id) = self.encoder.participant.take()
        {
            self.remove(id, LeaveReason::Left, &mut out);
        }
        self.encoder_status(state, reason, &mut out);
        out
    }

    /// The encoder's participant, while it publishes.
    pub fn encoder_participant(&self) -> Option<ParticipantId> {
        self.encoder.participant
    }

    pub(super) fn is_encoder(&self, participant: ParticipantId) -> bool {
        self.encoder.participant == Some(participant)
    }

    /// Refuses a moderation action aimed at the encoder.
    pub(super) fn not_the_encoder(&self, participant: ParticipantId) -> Result<(), Refusal> {
        if self.is_encoder(participant) {
            return Err(Refusal::new(
                "encoder_participant",
                "the encoder is controlled from the encoder itself (stop streaming there)",
            ));
        }
        Ok(())
    }

    /// The `encoder` message for a moderator who just joined, if there is news.
    pub(super) fn encoder_news(&self) -> Option<ServerMessage> {
        let (state, reason) = self.encoder.status.clone()?;
        Some(ServerMessage::Encoder { state, reason })
    }

    fn encoder_status(
        &mut self,
        state: EncoderState,
        reason: Option<String>,
        out: &mut Vec<Output>,
    ) {
        self.encoder.status = Some((state, reason.clone()));
        let message = ServerMessage::Encoder { state, reason };
        for (id, p) in &self.participants {
            if p.moderates() && p.connection.is_some() {
                out.push(Output::Send {
                    to: *id,
                    message: message.clone(),
                });
            }
        }
    }
}
