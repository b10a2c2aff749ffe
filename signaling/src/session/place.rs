//! Where a session is: the lesson's main room, where it joined, and the breakout room the
//! main room moved it to, if any. Messages about the lesson as a whole (breakout rooms, the
//! lesson's end, leaving it) go to the main room wherever the session is; everything else
//! goes to the room the session is in. A move ([`Outbound::Transfer`]) leaves the breakout
//! room the session was in and joins the next one on the same WebSocket, with the same join
//! claims named for that room (the main room decided the move; no client names a room).
//!
//! Every stay in a breakout room is a new [`Leg`] of the session: the session passes on what
//! the main room sends, and what the breakout room it is in now sends, and drops what a room it
//! has left still sends (it goes on until it hears of the departure; see [`Place::hears`]).

use classroom_protocol::signal::{ClientMessage, ParticipantId};
use classroom_protocol::{JoinClaims, RoomName};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Leg, Outbound, Outbox, RoomCommand, RoomHandle, Rooms};
use crate::room::{ConnectionId, JoinError};

/// The rooms of one session.
pub(super) struct Place {
    home: RoomHandle,
    participant: ParticipantId,
    connection: ConnectionId,
    /// The claims the session joined with (its identity for the breakout rooms).
    claims: JoinClaims,
    /// The session's own outbox, for the breakout rooms it joins; weak, so that the outbox
    /// closes (and the session ends) when no room holds it any more.
    outbox: mpsc::WeakSender<(Leg, Outbound)>,
    /// The breakout room the session is in, who it is there, and the leg of its stay.
    away: Option<(RoomHandle, ParticipantId, Leg)>,
    /// The last leg begun ([`Leg::HOME`] before any move).
    last_leg: Leg,
    /// The main room's last word on whether the participant speaks to every breakout room.
    voice: bool,
    /// The session came over an edge's signaling link (its media is the edge's there too).
    edge: Option<crate::media::EdgeId>,
}

/// Why a move could not be made; the session stays in the main room.
#[derive(Debug, thiserror::Error)]
pub(super) enum MoveError {
    #[error("the breakout room has closed")]
    Closed,
    #[error(transparent)]
    Refused(#[from] JoinError),
}

impl Place {
    pub(super) fn new(
        home: RoomHandle,
        participant: ParticipantId,
        connection: ConnectionId,
        claims: JoinClaims,
        outbox: mpsc::WeakSender<(Leg, Outbound)>,
        edge: Option<crate::media::EdgeId>,
    ) -> Self {
        Place {
            home,
            participant,
            connection,
            claims,
            outbox,
            away: None,
            last_leg: Leg::HOME,
            voice: false,
            edge,
        }
    }

    /// The room a client message goes to, and who the session is there.
    pub(super) fn route(&self, message: &ClientMessage) -> (&RoomHandle, ParticipantId) {
        let lesson_wide = matches!(
            message,
            ClientMessage::OpenBreakouts { .. }
                | ClientMessage::MoveToBreakout { .. }
                | ClientMessage::ChooseBreakout { .. }
                | ClientMessage::VisitBreakout { .. }
                | ClientMessage::BroadcastToBreakouts { .. }
                | ClientMessage::SpeakToBreakouts { .. }
                | ClientMessage::RecordBreakout { .. }
                | ClientMessage::CallTeacher
                | ClientMessage::CloseBreakouts
                | ClientMessage::EndLesson
                | ClientMessage::Leave
        );
        match &self.away {
            Some((room, participant, _)) if !lesson_wide => (room, *participant),
            _ => (&self.home, self.participant),
        }
    }

    /// Whether what a room sent on `leg` is for the client now: the main room's always (it
    /// sends a participant away only what it names them), a breakout room's only while the
    /// session is in it.
    pub(super) fn hears(&self, leg: Leg) -> bool {
        leg == Leg::HOME || self.away.as_ref().is_some_and(|(_, _, now)| *now == leg)
    }

    /// The main room says whether the participant speaks to every breakout room: the
    /// breakout room the session is in carries it out (the main room does for its own peers).
    pub(super) async fn voice(&mut self, on: bool) {
        self.voice = on;
        self.tell_voice().await;
    }

    async fn tell_voice(&self) {
        if let Some((room, participant, _)) = &self.away {
            let voice = RoomCommand::Voice {
                participant: *participant,
                on: self.voice,
            };
            let _ = room.commands.send(voice).await;
        }
    }

    /// The main room moved the session to breakout room `to`, or back (`None`): it leaves the
    /// breakout room it is in, and joins `to`.
    pub(super) async fn transfer(
        &mut self,
        rooms: &Rooms,
        to: Option<RoomName>,
    ) -> Result<(), MoveError> {
        if let Some((room, participant, _)) = self.away.take() {
            let departed = RoomCommand::Departed {
                participant,
                connection: self.connection,
            };
            let _ = room.commands.send(departed).await;
        }
        let Some(name) = to else { return Ok(()) };
        let room = rooms.open_room(&name, self.claims.lesson);
        let mut claims = self.claims.clone();
        claims.room = name;
        let sender = self.outbox.upgrade().ok_or(MoveError::Closed)?;
        // A new number for every stay, never the main room's.
        self.last_leg = Leg(self.last_leg.0.wrapping_add(1).max(1));
        let leg = self.last_leg;
        let outbox = Outbox::new(sender, leg);
        let (reply, decided) = oneshot::channel();
        let join = RoomCommand::Join {
            id: None,
            claims: Box::new(claims),
            connection: self.connection,
            opened_at: std::time::Instant::now(),
            edge: self.edge,
            go_live: false,
            outbox,
            reply,
        };
        if room.is_ended() || room.commands.send(join).await.is_err() {
            return Err(MoveError::Closed);
        }
        let participant = decided.await.map_err(|_| MoveError::Closed)??;
        self.away = Some((room, participant, leg));
        if self.voice {
            self.tell_voice().await;
        }
        Ok(())
    }

    /// The session ends: the breakout room it is in lets its place go at once, and the main
    /// room hears of the dropped connection (its reconnect grace applies) unless it closed
    /// the session itself (`closed_by_home`).
    pub(super) async fn end(self, closed_by_room: bool) {
        let connection = self.connection;
        let in_breakout = self.away.is_some();
        if let Some((room, participant, _)) = self.away {
            let departed = RoomCommand::Departed {
                participant,
                connection,
            };
            let _ = room.commands.send(departed).await;
        }
        // A breakout room may have closed the session (a moderator removed them there): the
        // main room must hear of it too; a participant it removed already ignores this.
        if !closed_by_room || in_breakout {
            let disconnected = RoomCommand::Disconnected {
                participant: self.participant,
                connection,
            };
            let _ = self.home.commands.send(disconnected).await;
        }
    }
}
