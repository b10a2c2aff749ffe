//! The WebSocket connections of one room task, by participant and by connection: where the
//! room's messages go. Each connection has a bounded outbox; a client too slow to empty it is
//! detached and reported ([`Connections::take_overflowed`]), and the room hears of it as a
//! dropped connection, like any other.
//!
//! A participant of the main room moved to a breakout room is `away`: their session now
//! shares its outbox with the breakout room, and from here they get only what is sent to them
//! by name, not the main room's broadcasts.
//!
//! Each room marks what it puts in an outbox with the session's [`Leg`] for that room: a room
//! the session has left (a breakout room it was moved out of) goes on sending until it hears
//! of the departure, and the session drops what comes from a leg that is over.

use std::collections::{HashMap, HashSet};

use classroom_protocol::signal::{ParticipantId, ServerMessage};
use classroom_protocol::{CloseReason, RoomName};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{Outbound, encode};
use crate::room::ConnectionId;

/// A session's stay in one room, numbered by the session: its main room is [`Leg::HOME`], each
/// breakout room it is moved to the next number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leg(pub(crate) u32);

impl Leg {
    pub(crate) const HOME: Leg = Leg(0);
}

/// A session's outbox as one room holds it: what the room sends goes out marked with the
/// session's leg for that room.
#[derive(Debug)]
pub(crate) struct Outbox {
    sender: mpsc::Sender<(Leg, Outbound)>,
    leg: Leg,
}

impl Outbox {
    pub(crate) fn new(sender: mpsc::Sender<(Leg, Outbound)>, leg: Leg) -> Self {
        Outbox { sender, leg }
    }

    fn try_send(&self, outbound: Outbound) -> Result<(), TrySendError<(Leg, Outbound)>> {
        self.sender.try_send((self.leg, outbound))
    }
}

/// The connections of one room, by participant and by connection.
#[derive(Default)]
pub(super) struct Connections {
    by_connection: HashMap<ConnectionId, (ParticipantId, Outbox)>,
    by_participant: HashMap<ParticipantId, ConnectionId>,
    away: HashSet<ParticipantId>,
    overflowed: Vec<(ParticipantId, ConnectionId)>,
}

impl Connections {
    pub(super) fn attach(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
        outbox: Outbox,
    ) {
        self.by_connection.insert(connection, (participant, outbox));
        self.by_participant.insert(participant, connection);
        self.away.remove(&participant);
    }

    pub(super) fn detach(&mut self, connection: ConnectionId) {
        if let Some((participant, _)) = self.by_connection.remove(&connection)
            && self.by_participant.get(&participant) == Some(&connection)
        {
            self.by_participant.remove(&participant);
        }
    }

    /// Sends to one connection (media replies go to the connection that negotiated).
    pub(super) fn send_to_connection(&mut self, connection: ConnectionId, message: &ServerMessage) {
        let text = encode(message);
        self.push(connection, Outbound::Text(text));
    }

    pub(super) fn send(&mut self, to: ParticipantId, message: &ServerMessage) {
        let Some(connection) = self.by_participant.get(&to).copied() else {
            return;
        };
        let text = encode(message);
        self.push(connection, Outbound::Text(text));
    }

    pub(super) fn broadcast(&mut self, except: Option<ParticipantId>, message: &ServerMessage) {
        let text = encode(message); // once, shared by every connection
        let targets: Vec<ConnectionId> = self
            .by_participant
            .iter()
            .filter(|(p, _)| Some(**p) != except && !self.away.contains(*p))
            .map(|(_, c)| *c)
            .collect();
        for connection in targets {
            self.push(connection, Outbound::Text(text.clone()));
        }
    }

    /// Tells the session of `participant` to move to breakout room `to`, or back here.
    pub(super) fn transfer(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
        to: Option<RoomName>,
    ) {
        match to {
            Some(_) => self.away.insert(participant),
            None => self.away.remove(&participant),
        };
        self.push(connection, Outbound::Transfer(to));
    }

    /// Tells the session of `connection` whether its participant speaks to every breakout
    /// room.
    pub(super) fn voice(&mut self, connection: ConnectionId, on: bool) {
        self.push(connection, Outbound::Voice(on));
    }

    pub(super) fn close(&mut self, connection: ConnectionId, why: CloseReason) {
        if let Some((_, outbox)) = self.by_connection.get(&connection) {
            // A full outbox still closes: the session notices its channel is dropped.
            let _ = outbox.try_send(Outbound::Close(why));
        }
        self.detach(connection);
    }

    /// Closes every connection (the node drains).
    pub(super) fn close_all(&mut self, why: CloseReason) {
        let all: Vec<ConnectionId> = self.by_connection.keys().copied().collect();
        for connection in all {
            self.close(connection, why);
        }
    }

    fn push(&mut self, connection: ConnectionId, outbound: Outbound) {
        let Some((participant, outbox)) = self.by_connection.get(&connection) else {
            return;
        };
        match outbox.try_send(outbound) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(%participant, "client too slow to read signaling; disconnecting it");
            }
            // The page went away and its session ended before the room heard of it: not a
            // slow client, and the same cleanup.
            Err(TrySendError::Closed(_)) => {
                tracing::debug!(%participant, "signaling connection already closed");
            }
        }
        self.overflowed.push((*participant, connection));
        self.detach(connection);
    }

    pub(super) fn take_overflowed(&mut self) -> Vec<(ParticipantId, ConnectionId)> {
        std::mem::take(&mut self.overflowed)
    }
}
