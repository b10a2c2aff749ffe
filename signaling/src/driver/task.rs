//! The task of one room: a pump around its sans-IO [`Room`]. It reads one command, hands it
//! to the room as an [`Input`], carries out every [`Output`] in order (sending to connections,
//! calling the media port, telling the rest of the server), feeds the media plane's replies
//! and the connections that could not keep up back in as inputs, and sleeps until the next
//! command or [`Room::poll_timeout`]. No rule of the room is decided here.
//!
//! Media calls are awaited in the task: they are short, and awaiting them keeps every peer's
//! permissions in step with the room's grants without locks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use classroom_protocol::signal::ParticipantId;
use classroom_protocol::{CloseReason, LessonId, RoomName};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::connections::{Connections, Outbox};
use super::{
    EncoderCommand, MediaShared, RoomCommand, RoomEvent, RoomHandle, RoomOpener, RoomStates,
};
use crate::media::PeerId;
use crate::room::{
    ConnectionId, EncoderError, Input, JoinError, MediaCommand, MediaReply, Output, PeerFiling,
    Room, RoomKind,
};
use crate::stats::SignalingStats;

/// The media port as one room task uses it.
pub(super) struct RoomPort {
    pub(super) shared: Arc<MediaShared>,
    /// This room's command channel, where the notices about its peers are routed.
    pub(super) room: mpsc::WeakSender<RoomCommand>,
    /// This room's name, under which its publishers are listed.
    pub(super) name: RoomName,
}

/// What a room task talks to besides its connections.
pub(super) struct RoomLinks {
    pub(super) events: mpsc::UnboundedSender<RoomEvent>,
    pub(super) media: Option<RoomPort>,
    /// Where a lesson's room keeps its state (breakout rooms keep none: the round they belong
    /// to is not kept either).
    pub(super) states: Option<Arc<dyn RoomStates>>,
    pub(super) stats: Arc<SignalingStats>,
    /// The node's rooms, where a main room finds its breakout rooms to close them, or opens
    /// one to record it.
    pub(super) opener: RoomOpener,
}

/// Runs one room until it ends, the registry drops it, or (a breakout room) its main room
/// shuts it.
pub(super) async fn run_room(
    mut room: Room,
    mut inbox: mpsc::Receiver<RoomCommand>,
    ended: Arc<AtomicBool>,
    links: RoomLinks,
) {
    let RoomLinks {
        events,
        media,
        states,
        stats,
        opener,
    } = links;
    let states = states.filter(|_| room.kind() == RoomKind::Lesson);
    if states.is_some() {
        room.keep_boards();
    }
    let mut io = RoomIo {
        name: room.name().clone(),
        lesson: room.lesson(),
        connections: Connections::default(),
        joining: HashMap::new(),
        encoder_replies: VecDeque::new(),
        events,
        media,
        opener,
    };
    // Joins wait in the inbox meanwhile: nobody enters a room before what it kept is back.
    if let Some(states) = &states {
        match states.load(&io.name).await {
            Ok(Some(state)) => {
                tracing::info!(room = %io.name, "room restored");
                room.restore(now(), state);
                io.drain(&mut room).await;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(room = %io.name, %error, "cannot read what the room kept; it opens empty");
            }
        }
    }
    let mut counted_participants = 0i64;
    // A participant in a breakout room keeps their place in the lesson's main room, where
    // they are counted: the breakout room does not count them twice.
    let counts = room.kind() == RoomKind::Lesson;
    loop {
        let deadline = room.poll_timeout().map(Instant::from_std);
        let input = tokio::select! {
            command = inbox.recv() => match command {
                Some(RoomCommand::Shut) => {
                    ended.store(true, Ordering::Release);
                    break;
                }
                Some(command) => match io.input(command) {
                    Some(input) => input,
                    // The node drains: what the room keeps is stored already (after every
                    // step); everyone is sent to join again, elsewhere or after the restart.
                    None => {
                        io.connections.close_all(CloseReason::Draining);
                        tracing::info!(room = %io.name, "room drained");
                        break;
                    }
                },
                None => break,
            },
            () = sleep_until(deadline) => Input::Timeout,
        };
        // What the media plane reports (speakers, quality) changes nothing a room keeps: the
        // stored state is not even compared then.
        let may_change_state = !matches!(input, Input::MediaEvent(_));
        room.handle_input(now(), input);
        io.drain(&mut room).await;
        let present = if counts { room.participant_count() } else { 0 };
        let participants = i64::try_from(present).unwrap_or(i64::MAX);
        stats.participants_changed(participants - counted_participants);
        counted_participants = participants;
        if room.is_ended() {
            ended.store(true, Ordering::Release);
            if let Some(states) = &states {
                states.forget(&io.name);
            }
            break;
        }
        if let Some(states) = states.as_ref().filter(|_| may_change_state) {
            if let Some(state) = room.take_state_change(now()) {
                states.save(&io.name, io.lesson, state);
            }
            for change in room.take_board_changes(now()) {
                states.save_board(&io.name, io.lesson, change);
            }
        }
    }
    // Drawing of the last second not written yet (a drain, a shut down): written now.
    if let Some(states) = states.as_ref().filter(|_| !room.is_ended()) {
        for change in room.flush_board_changes() {
            states.save_board(&io.name, io.lesson, change);
        }
    }
    room.handle_input(now(), Input::Closed);
    io.drain(&mut room).await;
    stats.participants_changed(-counted_participants);
    tracing::info!(room = %room.name(), "room closed");
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

type JoinReply = oneshot::Sender<Result<ParticipantId, JoinError>>;

/// Everything of a room task that is I/O: connections, the replies awaited by sessions and
/// the ingest, the event channel and the media port.
struct RoomIo {
    name: RoomName,
    lesson: LessonId,
    connections: Connections,
    /// Joins the room has not decided yet: the connection's outbox and the session's reply.
    joining: HashMap<ConnectionId, (Outbox, JoinReply)>,
    /// The ingest's replies, in the order of its `EncoderStarted` inputs.
    encoder_replies: VecDeque<oneshot::Sender<Result<PeerId, EncoderError>>>,
    events: mpsc::UnboundedSender<RoomEvent>,
    media: Option<RoomPort>,
    opener: RoomOpener,
}

impl RoomIo {
    /// The room's input for a command, keeping what the command carries for replies; `None`
    /// for [`RoomCommand::Drain`], which ends the task instead.
    fn input(&mut self, command: RoomCommand) -> Option<Input> {
        let input = match command {
            RoomCommand::Join {
                id,
                claims,
                connection,
                opened_at,
                edge,
                go_live,
                outbox,
                reply,
            } => {
                self.joining.insert(connection, (outbox, reply));
                Input::Join {
                    connection,
                    id,
                    claims,
                    opened_at: Some(opened_at),
                    edge,
                    go_live,
                }
            }
            RoomCommand::Message {
                participant,
                connection,
                id,
                message,
            } => Input::Message {
                participant,
                connection,
                id,
                message,
            },
            RoomCommand::Disconnected {
                participant,
                connection,
            } => {
                self.connections.detach(connection);
                Input::Disconnected {
                    participant,
                    connection,
                }
            }
            RoomCommand::Departed {
                participant,
                connection,
            } => {
                self.connections.detach(connection);
                Input::Departed {
                    participant,
                    connection,
                }
            }
            RoomCommand::Voice { participant, on } => Input::Voice { participant, on },
            RoomCommand::BreakoutSpeakers { room, users } => {
                Input::BreakoutSpeakers { room, users }
            }
            // Handled by the loop before it asks for an input.
            RoomCommand::Shut => Input::Closed,
            RoomCommand::Media(notice) => Input::MediaEvent(notice),
            RoomCommand::StartRecording => Input::StartRecording,
            RoomCommand::Record { on } => Input::RecordRoom { on },
            RoomCommand::Access(change) => Input::Access(change),
            RoomCommand::Revoke { user, why } => Input::Revoke { user, why },
            RoomCommand::Encoder(EncoderCommand::Started {
                identity,
                mids,
                reply,
            }) => {
                self.encoder_replies.push_back(reply);
                Input::EncoderStarted { identity, mids }
            }
            RoomCommand::Encoder(EncoderCommand::Changed { state, reason }) => {
                Input::EncoderChanged { state, reason }
            }
            RoomCommand::Drain => return None,
        };
        Some(input)
    }

    /// Carries out the room's outputs until none are left. The media plane's replies, and
    /// the connections whose outbox overflowed (handled as dropped connections), go back to
    /// the room, whose outputs are carried out the same way.
    async fn drain(&mut self, room: &mut Room) {
        loop {
            while let Some(output) = room.poll_output() {
                if let Some(reply) = self.carry_out(output).await {
                    room.handle_input(now(), Input::MediaReply(reply));
                }
            }
            let overflowed = self.connections.take_overflowed();
            if overflowed.is_empty() {
                return;
            }
            for (participant, connection) in overflowed {
                let input = Input::Disconnected {
                    participant,
                    connection,
                };
                room.handle_input(now(), input);
            }
        }
    }

    async fn carry_out(&mut self, output: Output) -> Option<MediaReply> {
        let room = self.name.clone();
        let event = match output {
            Output::Send { to, message } => {
                self.connections.send(to, &message);
                return None;
            }
            Output::SendToConnection {
                connection,
                message,
            } => {
                self.connections.send_to_connection(connection, &message);
                return None;
            }
            Output::Broadcast { except, message } => {
                self.connections.broadcast(except, &message);
                return None;
            }
            Output::Close { connection, why } => {
                self.connections.close(connection, why);
                return None;
            }
            Output::Transfer {
                participant,
                connection,
                to,
            } => {
                self.connections.transfer(participant, connection, to);
                return None;
            }
            Output::Voice { connection, on } => {
                self.connections.voice(connection, on);
                return None;
            }
            Output::RoomSpeakers { users } => {
                self.tell_main_room(users);
                return None;
            }
            Output::CloseRooms(names) => {
                self.shut(names).await;
                return None;
            }
            Output::RecordRoom { room, on } => {
                self.record_room(&room, on).await;
                return None;
            }
            Output::JoinDecided { connection, result } => {
                if let Some((outbox, reply)) = self.joining.remove(&connection) {
                    if let Ok(participant) = result {
                        self.connections.attach(participant, connection, outbox);
                    }
                    let _ = reply.send(result);
                }
                return None;
            }
            Output::EncoderAdmitted(result) => {
                if let Some(reply) = self.encoder_replies.pop_front() {
                    let _ = reply.send(result);
                }
                return None;
            }
            Output::ToMedia(command) => return self.media.as_ref()?.command(&room, command).await,
            Output::Filing(filing) => {
                if let Some(media) = &self.media {
                    media.file(filing);
                }
                return None;
            }
            Output::Media(effect) => RoomEvent::Media { room, effect },
            Output::Lesson(effect) => RoomEvent::Lesson(effect),
            Output::Recording(effect) => RoomEvent::Recording {
                room,
                lesson: self.lesson,
                effect,
            },
            Output::Activity(activity) => RoomEvent::Activity { room, activity },
            Output::Attendance(event) => RoomEvent::Attendance {
                lesson: self.lesson,
                at: std::time::SystemTime::now(),
                event,
            },
            Output::PollClosed(poll) => RoomEvent::PollClosed {
                lesson: self.lesson,
                poll,
            },
        };
        let _ = self.events.send(event);
        None
    }
}

impl RoomIo {
    /// A breakout room's speakers, to its lesson's main room. Best effort (`try_send`): a
    /// newer list follows within a second, and a breakout room never waits on the main room
    /// (which waits on it when it closes the rooms).
    fn tell_main_room(&self, users: Vec<classroom_protocol::UserId>) {
        let Some(registry) = self.opener.registry() else {
            return;
        };
        let Some((lesson, _, _)) = self.name.breakout() else {
            return;
        };
        if let Some(main) = registry.get(&RoomName::for_lesson(lesson)) {
            let speakers = RoomCommand::BreakoutSpeakers {
                room: self.name.clone(),
                users,
            };
            let _ = main.commands.try_send(speakers);
        }
    }

    /// Ends a closed round's breakout rooms (kept in the registry as ended, like a lesson's
    /// ended room; the round in their names keeps the next round's apart).
    async fn shut(&self, names: Vec<RoomName>) {
        let Some(registry) = self.opener.registry() else {
            return;
        };
        let handles: Vec<RoomHandle> = names
            .iter()
            .filter_map(|name| registry.get(name).map(|r| r.clone()))
            .collect();
        drop(registry);
        for handle in handles {
            let _ = handle.commands.send(RoomCommand::Shut).await;
        }
    }
}

impl RoomIo {
    /// Tells breakout room `room` of this lesson whether it records, opening it when nobody
    /// has been moved there yet (the moves follow this in the main room's outputs). A room
    /// of a round already closed stays closed.
    async fn record_room(&self, room: &RoomName, on: bool) {
        let Some(handle) = self.opener.open(room, self.lesson) else {
            return;
        };
        if !handle.is_ended() {
            let _ = handle.commands.send(RoomCommand::Record { on }).await;
        }
    }
}

impl RoomPort {
    /// Calls the port; the reply, for the commands that have one.
    async fn command(&self, room: &RoomName, command: MediaCommand) -> Option<MediaReply> {
        let port = &self.shared.port;
        match command {
            MediaCommand::AddPeer {
                request,
                peer,
                offer,
                access,
            } => {
                let result = port.add_peer(peer, room, offer, access).await;
                Some(MediaReply::Answer { request, result })
            }
            MediaCommand::AcceptOffer {
                request,
                peer,
                offer,
            } => {
                let result = port.accept_offer(peer, offer).await;
                Some(MediaReply::Answer { request, result })
            }
            MediaCommand::AcceptAnswer {
                request,
                peer,
                answer,
            } => {
                let result = port.accept_answer(peer, answer).await;
                Some(MediaReply::Done { request, result })
            }
            MediaCommand::SetVideoSize {
                request,
                peer,
                mid,
                height,
            } => {
                let result = port.set_video_size(peer, mid, height).await;
                Some(MediaReply::Done { request, result })
            }
            MediaCommand::RemovePeer { peer } => {
                port.remove_peer(peer).await;
                None
            }
            MediaCommand::SetPublishAllowed { peer, allowed } => {
                port.set_publish_allowed(peer, allowed).await;
                None
            }
            MediaCommand::SetAudioMuted { peer, muted } => {
                port.set_audio_muted(peer, muted).await;
                None
            }
            MediaCommand::SetVoiceBroadcast { peer, lesson } => {
                port.set_voice_broadcast(peer, lesson).await;
                None
            }
        }
    }

    /// Keeps the node's directory of peers in step with the room.
    fn file(&self, filing: PeerFiling) {
        match filing {
            PeerFiling::Routed(peer) => {
                self.shared.peers.insert(peer, self.room.clone());
            }
            PeerFiling::Published {
                peer,
                role,
                sources,
            } => {
                self.shared
                    .published
                    .insert(peer, (self.name.clone(), role, sources));
            }
            PeerFiling::Forgotten(peer) => {
                self.shared.peers.remove(&peer);
                self.shared.published.remove(&peer);
            }
        }
    }
}
