//! The stage, the hand queue and mute: students raise hands (first raised first), moderators
//! bring them on stage (grants to publish camera and microphone) and take them off, and mute
//! microphones; a muted participant may unmute themselves.

use classroom_protocol::signal::{ParticipantId, ServerMessage};
use classroom_protocol::{ErrorCode, TrackSource};

use super::{Actor, AttendanceEvent, MediaEffect, Output, Refusal, Room};

impl Room {
    pub(super) fn raise_hand(&mut self, from: ParticipantId, out: &mut Vec<Output>) {
        if !self.hands.contains(&from) {
            self.hands.push_back(from);
            self.set_hand(from, true, out);
            self.attended(from, |user| AttendanceEvent::HandRaised { user }, out);
        }
    }

    pub(super) fn lower_hand(&mut self, from: ParticipantId, out: &mut Vec<Output>) {
        if self.hands.contains(&from) {
            self.hands.retain(|p| *p != from);
            self.set_hand(from, false, out);
        }
    }

    /// One's own hand, or (moderators) anyone's: the queue's "Lower hand" button.
    pub(super) fn lower_hand_of(
        &mut self,
        actor: &Actor,
        participant: ParticipantId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if participant != actor.id {
            actor.require_moderator("lower others' hands")?;
            self.target_mut(participant)?;
        }
        self.lower_hand(participant, out);
        Ok(())
    }

    /// Grants publishing of camera and microphone; being brought on stage lowers the hand.
    pub(super) fn invite_to_stage(
        &mut self,
        actor: &Actor,
        participant: ParticipantId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("bring participants on stage")?;
        self.not_the_encoder(participant)?;
        if self.target_mut(participant)?.info.on_stage {
            return Ok(());
        }
        self.put_on_stage(participant, out);
        Ok(())
    }

    /// Grants camera and microphone to `participant` and tells the media plane, them and
    /// everyone; their raised hand is lowered.
    pub(super) fn put_on_stage(&mut self, participant: ParticipantId, out: &mut Vec<Output>) {
        let Some(target) = self.participants.get_mut(&participant) else {
            return;
        };
        let sources = [TrackSource::Camera, TrackSource::Microphone];
        target.info.on_stage = true;
        for source in sources {
            if !target.grants.publish.contains(&source) {
                target.grants.publish.push(source);
            }
        }
        let grants = target.grants.clone();
        out.push(Output::Media(MediaEffect::PublishAllowed {
            participant,
            sources: grants.publish.clone(),
        }));
        let on_stage = true;
        self.attended(
            participant,
            |user| AttendanceEvent::Stage { user, on_stage },
            out,
        );
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

    /// Moderators take a student off stage.
    pub(super) fn remove_from_stage(
        &mut self,
        actor: &Actor,
        participant: ParticipantId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("take participants off stage")?;
        self.not_the_encoder(participant)?;
        let target = self.target_mut(participant)?;
        if !target.info.on_stage || target.base_grants.moderate {
            return Err(Refusal::new(
                ErrorCode::NotOnStage,
                "that participant is not a student on stage",
            ));
        }
        self.off_stage(participant, out);
        Ok(())
    }

    /// A student leaves the stage by themselves, or declines being brought on it: the others
    /// see them off stage rather than on a stage they never took. Nothing to do for anyone
    /// not on stage, or whose place on it is their role's (teachers, assistants).
    pub(super) fn leave_stage(&mut self, from: ParticipantId, out: &mut Vec<Output>) {
        let on_stage_student = self
            .participants
            .get(&from)
            .is_some_and(|p| p.info.on_stage && !p.base_grants.moderate);
        if on_stage_student {
            self.off_stage(from, out);
        }
    }

    /// Back to the join token's grants; the media plane stops forwarding before anyone hears.
    fn off_stage(&mut self, participant: ParticipantId, out: &mut Vec<Output>) {
        let Some(target) = self.participants.get_mut(&participant) else {
            return;
        };
        target.info.on_stage = false;
        target.grants = target.base_grants.clone();
        let grants = target.grants.clone();
        // Media first: forwarding stops before anyone hears of it.
        out.push(Output::Media(MediaEffect::PublishRevoked { participant }));
        out.push(Output::Send {
            to: participant,
            message: ServerMessage::GrantsChanged { grants },
        });
        let on_stage = false;
        self.attended(
            participant,
            |user| AttendanceEvent::Stage { user, on_stage },
            out,
        );
        self.announce(participant, out);
    }

    pub(super) fn mute_one(
        &mut self,
        actor: &Actor,
        participant: ParticipantId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("mute participants")?;
        self.not_the_encoder(participant)?;
        self.target_mut(participant)?;
        self.mute(actor.id, participant, out);
        Ok(())
    }

    /// Everyone but the moderator (and the encoder, controlled from the encoder itself).
    pub(super) fn mute_all(&mut self, actor: &Actor, out: &mut Vec<Output>) -> Result<(), Refusal> {
        actor.require_moderator("mute everyone")?;
        let others: Vec<_> = self
            .participants
            .keys()
            .copied()
            .filter(|p| *p != actor.id && !self.is_encoder(*p))
            .collect();
        for participant in others {
            self.mute(actor.id, participant, out);
        }
        Ok(())
    }

    pub(super) fn unmute(&mut self, from: ParticipantId, out: &mut Vec<Output>) {
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

    pub(super) fn set_hand(
        &mut self,
        participant: ParticipantId,
        raised: bool,
        out: &mut Vec<Output>,
    ) {
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
}
