//! Who hears of whom: the participant list of a large room.
//!
//! In a class every participant sees everyone, and every join is told to everyone: a room of
//! N people sends N² participant messages as it fills. For a lecture of thousands that is
//! the whole signaling load (10,000 students: 10⁸ messages to fill the room), and a list no
//! student reads. Once a room holds more than [`super::RoomConfig::full_roster_limit`]
//! participants its roster becomes *partial*, for the rest of its life (a room that shrinks
//! back does not send everyone the list again):
//!
//! - Students hear of the *notable*: moderators, participants on stage or with a hand up, and
//!   anyone they were already told of (their later changes and their leaving). Everyone else
//!   comes and goes unannounced; the head count ([`ServerMessage::ParticipantCount`]) follows
//!   at most once per [`COUNT_INTERVAL`].
//! - Moderators hear of everyone, as before, and page in the list as it was when they joined
//!   ([`ClientMessage::ListParticipants`]): a `joined` lists only the notable.
//!
//! The filter sits where every step's outputs pass ([`Room::follow`]), so the rules that
//! produce participant messages (joins, stage, hands, access, the encoder) stay unaware of it.
//!
//! [`ClientMessage::ListParticipants`]: classroom_protocol::signal::ClientMessage::ListParticipants

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    PARTICIPANTS_PAGE_MAX, ParticipantId, ParticipantInfo, ServerMessage,
};
use classroom_protocol::{ErrorCode, ParticipantRole};

use super::{Actor, Output, Participant, Refusal, Room};

/// How often at most a large room's head count is sent to everyone.
pub(super) const COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// What the room has told its participants about who is in it.
#[derive(Debug, Default)]
pub(super) struct Roster {
    /// The room has held more than the full-roster limit: students hear of the notable only.
    partial: bool,
    /// Participants everyone has been told of (their join or a change was broadcast), whose
    /// changes and leaving everyone therefore hears.
    announced: BTreeSet<ParticipantId>,
    /// The head count last sent to everyone, when the next may go, and whether one is due.
    count_sent: Option<usize>,
    count_next: Option<Instant>,
}

impl Roster {
    pub(super) fn is_partial(&self) -> bool {
        self.partial
    }

    /// When a held-back head count is due (for [`Room::poll_timeout`]).
    pub(super) fn deadline(&self, count: usize) -> Option<Instant> {
        (self.partial && self.count_sent != Some(count))
            .then_some(self.count_next)
            .flatten()
    }
}

/// Whether everyone is told of `p` in a large room.
fn notable(p: &ParticipantInfo, moderates: bool) -> bool {
    moderates
        || p.on_stage
        || p.hand_raised
        || matches!(
            p.role,
            ParticipantRole::Teacher | ParticipantRole::Assistant
        )
}

impl Room {
    /// The participants a `joined` lists for `you`: everyone in a small room; in a large one
    /// the notable ones and `you`.
    pub(super) fn roster_for(&self, you: ParticipantId) -> Vec<ParticipantInfo> {
        let listed = |(id, p): (&ParticipantId, &Participant)| {
            (!self.roster.partial || *id == you || notable(&p.info, p.moderates()))
                .then(|| p.info.clone())
        };
        self.participants.iter().filter_map(listed).collect()
    }

    /// Routes one broadcast: a participant message (`ParticipantJoined`,
    /// `ParticipantUpdated`, `ParticipantLeft`) by the roster's rules, any other to everyone.
    pub(super) fn route_broadcast(
        &mut self,
        except: Option<ParticipantId>,
        message: ServerMessage,
        routed: &mut Vec<Output>,
    ) {
        let to_all = match &message {
            ServerMessage::ParticipantJoined { participant }
            | ServerMessage::ParticipantUpdated { participant } => {
                let moderates = self
                    .participants
                    .get(&participant.id)
                    .is_some_and(Participant::moderates);
                let heard = !self.roster.partial
                    || notable(participant, moderates)
                    || self.roster.announced.contains(&participant.id);
                if heard {
                    self.roster.announced.insert(participant.id);
                }
                heard
            }
            ServerMessage::ParticipantLeft { participant, .. } => {
                self.roster.announced.remove(participant) || !self.roster.partial
            }
            _ => true,
        };
        if to_all {
            routed.push(Output::Broadcast { except, message });
        } else {
            for (id, p) in &self.participants {
                let here = p.connection.is_some() && !self.is_away(*id);
                if p.moderates() && here && Some(*id) != except {
                    routed.push(Output::Send {
                        to: *id,
                        message: message.clone(),
                    });
                }
            }
        }
    }

    /// After a step: the roster turns partial when the room outgrows the limit, and a changed
    /// head count goes to everyone when its interval allows.
    pub(super) fn roster_step(&mut self, now: Instant, routed: &mut Vec<Output>) {
        let count = self.participants.len();
        if !self.roster.partial {
            if count <= self.config.full_roster_limit {
                return;
            }
            self.roster.partial = true;
        }
        if self.roster.count_sent == Some(count) {
            return;
        }
        if self.roster.count_next.is_some_and(|next| now < next) {
            return; // held back: poll_timeout wakes the room for it
        }
        self.roster.count_sent = Some(count);
        self.roster.count_next = Some(now + COUNT_INTERVAL);
        routed.push(Output::Broadcast {
            except: None,
            message: ServerMessage::ParticipantCount {
                count: u32::try_from(count).unwrap_or(u32::MAX),
            },
        });
    }

    /// [`ClientMessage::ListParticipants`]: a page of the list, for moderators.
    ///
    /// [`ClientMessage::ListParticipants`]: classroom_protocol::signal::ClientMessage::ListParticipants
    pub(super) fn list_participants(
        &self,
        actor: &Actor,
        after: Option<ParticipantId>,
        limit: Option<u32>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("list the participants")?;
        let limit = limit.unwrap_or(PARTICIPANTS_PAGE_MAX);
        if limit == 0 || limit > PARTICIPANTS_PAGE_MAX {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                format!("limit must be 1 to {PARTICIPANTS_PAGE_MAX}"),
            ));
        }
        let start = after.map_or(ParticipantId(0), |a| ParticipantId(a.0.saturating_add(1)));
        let mut page = self.participants.range(start..);
        let participants: Vec<ParticipantInfo> = page
            .by_ref()
            .take(limit as usize)
            .map(|(_, p)| p.info.clone())
            .collect();
        let next = match page.next() {
            Some(_) => participants.last().map(|p| p.id),
            None => None,
        };
        out.push(Output::Send {
            to: actor.id,
            message: ServerMessage::ParticipantsPage { participants, next },
        });
        Ok(())
    }
}
