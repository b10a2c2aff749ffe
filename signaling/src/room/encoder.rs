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

use classroom_protocol::signal::{
    EncoderState, LeaveReason, ParticipantId, ParticipantInfo, ServerMessage,
};
use classroom_protocol::{CloseReason, ErrorCode, Grants, ParticipantRole, TrackSource, UserId};

use super::{JoinError, Output, Participant, Refusal, Room};

/// Who an encoder publishes as: the teacher who holds the stream key, under a name saying it
/// is their encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderIdentity {
    pub user: UserId,
    pub name: String,
}

/// Why an encoder could not enter its lesson's room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncoderError {
    #[error("{0}")]
    Refused(#[from] JoinError),
    #[error("this server runs without media")]
    NoMedia,
    #[error("the lesson's room closed")]
    RoomClosed,
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
    /// [`super::Input::EncoderStarted`]: the encoder enters as a participant, and its
    /// in-process publisher gets a media peer of its own, whose tracks on `mids` have the
    /// source `encoder`. Answered with [`Output::EncoderAdmitted`] before the outputs of the
    /// entry.
    pub(super) fn encoder_input(
        &mut self,
        identity: &EncoderIdentity,
        mids: Vec<String>,
    ) -> Vec<Output> {
        let Some(ids) = self.media.ids() else {
            return vec![Output::EncoderAdmitted(Err(EncoderError::NoMedia))];
        };
        match self.encoder_started(identity) {
            Ok((participant, outputs)) => {
                let peer = ids.next();
                let mut step = self.file_encoder_peer(participant, peer, mids);
                step.push(Output::EncoderAdmitted(Ok(peer)));
                step.extend(outputs);
                step
            }
            Err(e) => vec![Output::EncoderAdmitted(Err(e.into()))],
        }
    }

    /// An encoder starts publishing (or resumes after a reconnect): returns its participant.
    /// Refused when the lesson has ended.
    pub(super) fn encoder_started(
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
        self.go_live(&mut out);
        self.encoder_status(EncoderState::Live, None, &mut out);
        Ok((id, out))
    }

    /// The encoder's connection dropped and may come back, it stopped, or a publish was
    /// refused. Stopping removes its participant.
    pub(super) fn encoder_changed(
        &mut self,
        state: EncoderState,
        reason: Option<String>,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if state == EncoderState::Stopped
            && let Some(id) = self.encoder.participant.take()
        {
            self.remove(id, LeaveReason::Left, CloseReason::Done, &mut out);
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
                ErrorCode::EncoderParticipant,
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use classroom_protocol::signal::ClientMessage;
    use classroom_protocol::{CourseId, JoinClaims, LessonId, RoomName};

    use super::*;
    use crate::room::LessonEffect;
    use crate::room::{ConnectionId, RoomConfig};

    const LESSON: LessonId = LessonId(3);

    fn claims(user: i64, role: ParticipantRole) -> JoinClaims {
        crate::room::test_claims(user, role, LESSON, CourseId(1), &format!("t{user}"))
    }

    fn encoder_messages(out: &[Output]) -> Vec<(ParticipantId, EncoderState)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    to,
                    message: ServerMessage::Encoder { state, .. },
                } => Some((*to, *state)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_encoder_makes_the_lesson_live_and_moderators_follow_it() {
        let now = Instant::now();
        let mut room = Room::new(
            RoomName::for_lesson(LESSON),
            LESSON,
            RoomConfig::default(),
            now,
        );
        let (student, _) = room
            .join(&claims(2, ParticipantRole::Student), ConnectionId(1))
            .expect("joins");
        let identity = EncoderIdentity {
            user: UserId(1),
            name: "user 1 (encoder)".into(),
        };
        let (encoder, out) = room.encoder_started(&identity).expect("starts");
        assert!(out.contains(&Output::Lesson(LessonEffect::WentLive(LESSON))));
        assert!(out.iter().any(|o| matches!(o, Output::Broadcast {
            message: ServerMessage::ParticipantJoined { participant }, ..
        } if participant.id == encoder && participant.role == ParticipantRole::Teacher)));
        assert_eq!(
            room.grants(encoder).map(|g| g.publish.clone()),
            Some(vec![TrackSource::Encoder])
        );
        // Resuming keeps the same participant.
        assert_eq!(room.encoder_started(&identity).expect("resumes").0, encoder);

        // The teacher it belongs to joins as themselves and hears the news; the lesson was live.
        let (teacher, out) = room
            .join(&claims(1, ParticipantRole::Teacher), ConnectionId(2))
            .expect("joins");
        assert_ne!(teacher, encoder);
        assert_eq!(encoder_messages(&out), [(teacher, EncoderState::Live)]);
        assert!(!out.iter().any(|o| matches!(o, Output::Lesson(_))));

        // Moderation aimed at the encoder is refused; mute-all leaves it alone.
        for message in [
            ClientMessage::Mute {
                participant: encoder,
            },
            ClientMessage::RemoveParticipant {
                participant: encoder,
            },
            ClientMessage::RemoveFromStage {
                participant: encoder,
            },
        ] {
            let out = room.handle(now, teacher, Some(1), message);
            assert!(out.iter().any(|o| matches!(o, Output::Send {
                message: ServerMessage::Error { code, .. }, ..
            } if *code == ErrorCode::EncoderParticipant)));
        }
        room.handle(now, teacher, None, ClientMessage::MuteAll);
        assert!(!room.is_muted(encoder));
        assert!(room.is_muted(student));

        // Refusals go to moderators only; stopping removes the encoder, not its teacher.
        let out = room.encoder_changed(EncoderState::Refused, Some("why".into()));
        assert_eq!(encoder_messages(&out), [(teacher, EncoderState::Refused)]);
        let out = room.encoder_changed(EncoderState::Stopped, None);
        assert!(
            out.contains(&Output::Media(crate::room::MediaEffect::ParticipantGone {
                participant: encoder
            }))
        );
        assert_eq!(room.encoder_participant(), None);
        assert!(room.grants(encoder).is_none());
        let (again, _) = room
            .join(&claims(1, ParticipantRole::Teacher), ConnectionId(3))
            .expect("rejoins");
        assert_eq!(again, teacher, "the teacher keeps their place");
    }

    #[test]
    fn a_webrtc_encoder_whose_connection_fails_stops() {
        let now = Instant::now();
        let mut room = Room::new(
            RoomName::for_lesson(LESSON),
            LESSON,
            RoomConfig::default(),
            now,
        )
        .with_media(crate::media::PeerIds::default());
        let (teacher, _) = room
            .join(&claims(1, ParticipantRole::Teacher), ConnectionId(1))
            .expect("joins");
        let identity = EncoderIdentity {
            user: UserId(1),
            name: "user 1 (encoder)".into(),
        };
        let out = room.encoder_input(&identity, vec!["0".into(), "1".into()]);
        let Some(Output::EncoderAdmitted(Ok(peer))) = out
            .iter()
            .find(|o| matches!(o, Output::EncoderAdmitted(_)))
            .cloned()
        else {
            panic!("the encoder is admitted: {out:?}");
        };
        // Its m-lines are the encoder's, for in-process subscribers (WHEP players, restreams).
        assert!(
            out.iter().any(|o| matches!(o,
            Output::Filing(crate::room::PeerFiling::Published { peer: p, role, sources })
                if *p == peer && *role == ParticipantRole::Teacher
                    && sources.values().all(|s| *s == TrackSource::Encoder) && sources.len() == 2))
        );
        let encoder = room.encoder_participant().expect("an encoder");

        // The media plane drops its peer (a WHIP encoder's ICE failed): the encoder stops.
        let out = room.media_event(crate::media::MediaNotice::PeerGone { peer });
        assert_eq!(encoder_messages(&out), [(teacher, EncoderState::Stopped)]);
        assert_eq!(room.encoder_participant(), None);
        assert!(room.grants(encoder).is_none());
        // A stale notice about the same peer changes nothing.
        assert!(
            room.media_event(crate::media::MediaNotice::PeerGone { peer })
                .is_empty()
        );
    }

    #[test]
    fn an_ended_lesson_refuses_its_encoder() {
        let now = Instant::now();
        let mut room = Room::new(
            RoomName::for_lesson(LESSON),
            LESSON,
            RoomConfig::default(),
            now,
        );
        let (teacher, _) = room
            .join(&claims(1, ParticipantRole::Teacher), ConnectionId(1))
            .expect("joins");
        room.handle(now, teacher, None, ClientMessage::EndLesson);
        let identity = EncoderIdentity {
            user: UserId(1),
            name: "e".into(),
        };
        assert_eq!(
            room.encoder_started(&identity).map(|(p, _)| p),
            Err(JoinError::LessonEnded)
        );
    }
}
