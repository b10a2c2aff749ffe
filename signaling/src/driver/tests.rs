//! The room task with a recording media port: what reaches the port, the connections and
//! the event channel, in order.

use std::sync::Mutex;

use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole};

use super::*;
use crate::media::{MediaError, MediaFuture, PeerAccess};

/// A media port that records what it is told.
#[derive(Default)]
struct FakePort {
    calls: Mutex<Vec<String>>,
}

impl FakePort {
    fn record(&self, call: String) {
        self.calls.lock().expect("not poisoned").push(call);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().expect("not poisoned"))
    }
}

impl MediaPort for FakePort {
    fn add_peer<'a>(
        &'a self,
        peer: PeerId,
        _room: &'a RoomName,
        offer: String,
        access: PeerAccess,
    ) -> MediaFuture<'a, Result<String, MediaError>> {
        Box::pin(async move {
            if offer == "bad" {
                return Err(MediaError::InvalidSdp("not SDP".into()));
            }
            self.record(format!(
                "add {peer} publish={} muted={}",
                access.publish, access.audio_muted
            ));
            Ok(format!("answer {peer}"))
        })
    }

    fn accept_offer(
        &self,
        peer: PeerId,
        _offer: String,
    ) -> MediaFuture<'_, Result<String, MediaError>> {
        Box::pin(async move {
            self.record(format!("renegotiate {peer}"));
            Ok(format!("answer {peer} again"))
        })
    }

    fn accept_answer(
        &self,
        peer: PeerId,
        _answer: String,
    ) -> MediaFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            self.record(format!("answer {peer}"));
            Ok(())
        })
    }

    fn remove_peer(&self, peer: PeerId) -> MediaFuture<'_, ()> {
        Box::pin(async move { self.record(format!("remove {peer}")) })
    }

    fn set_publish_allowed(&self, peer: PeerId, allowed: bool) -> MediaFuture<'_, ()> {
        Box::pin(async move { self.record(format!("publish {peer} {allowed}")) })
    }

    fn set_audio_muted(&self, peer: PeerId, muted: bool) -> MediaFuture<'_, ()> {
        Box::pin(async move { self.record(format!("mute {peer} {muted}")) })
    }

    fn set_voice_broadcast(
        &self,
        peer: PeerId,
        lesson: Option<classroom_protocol::LessonId>,
    ) -> MediaFuture<'_, ()> {
        Box::pin(async move { self.record(format!("voice {peer} {lesson:?}")) })
    }

    fn set_video_size(
        &self,
        peer: PeerId,
        mid: crate::media::Mid,
        height: u32,
    ) -> MediaFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            self.record(format!("size {peer} {mid} {height}"));
            Ok(())
        })
    }
}

fn claims(user: i64, role: ParticipantRole) -> JoinClaims {
    crate::room::test_claims(user, role, LessonId(1), CourseId(1), &format!("t{user}"))
}

struct Member {
    participant: ParticipantId,
    connection: ConnectionId,
    outbox: mpsc::Receiver<(Leg, Outbound)>,
}

async fn join(rooms: &Rooms, claims: JoinClaims) -> (RoomHandle, Member) {
    let room = rooms.room_for(&claims);
    let connection = rooms.next_connection();
    let (sender, outbound) = mpsc::channel(64);
    let outbox = Outbox::new(sender, Leg::HOME);
    let (reply, joined) = oneshot::channel();
    let join = RoomCommand::Join {
        id: None,
        claims: Box::new(claims),
        connection,
        opened_at: std::time::Instant::now(),
        edge: None,
        go_live: true,
        outbox,
        reply,
    };
    room.commands.send(join).await.expect("the room runs");
    let participant = joined.await.expect("a reply").expect("joined");
    (
        room,
        Member {
            participant,
            connection,
            outbox: outbound,
        },
    )
}

async fn say(room: &RoomHandle, member: &Member, id: u64, message: ClientMessage) {
    let command = RoomCommand::Message {
        participant: member.participant,
        connection: member.connection,
        id: Some(id),
        message,
    };
    room.commands.send(command).await.expect("the room runs");
}

/// The reply to request `id`, skipping other messages.
async fn reply(member: &mut Member, id: u64) -> ServerMessage {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), member.outbox.recv()).await;
        let Ok(Some((_, Outbound::Text(text)))) = next else {
            panic!("no reply to {id}")
        };
        let message: ServerMessage = serde_json::from_str(&text).expect("a server message");
        match &message {
            ServerMessage::Ok { id: got } if *got == id => return message,
            ServerMessage::Answer { id: Some(got), .. }
            | ServerMessage::Error { id: Some(got), .. }
                if *got == id =>
            {
                return message;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn peers_follow_connections_and_grants() {
    let port = Arc::new(FakePort::default());
    let (events, _events) = mpsc::unbounded_channel();
    let rooms = Rooms::with_media(SignalingConfig::default(), events, port.clone());
    let (room, mut teacher) = join(&rooms, claims(1, ParticipantRole::Teacher)).await;
    let (_, mut student) = join(&rooms, claims(2, ParticipantRole::Student)).await;

    // A bad offer is refused and opens nothing (its peer id is spent, never reused).
    say(
        &room,
        &student,
        1,
        ClientMessage::Offer {
            sdp: "bad".into(),
            sources: Default::default(),
        },
    )
    .await;
    let refused = reply(&mut student, 1).await;
    assert!(
        matches!(&refused, ServerMessage::Error { code, .. } if *code == ErrorCode::InvalidSdp),
        "{refused:?}"
    );
    assert!(port.take().is_empty());

    // Teachers publish from the start, students not until on stage.
    say(
        &room,
        &teacher,
        2,
        ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: Default::default(),
        },
    )
    .await;
    let answer = reply(&mut teacher, 2).await;
    assert_eq!(
        answer,
        ServerMessage::Answer {
            id: Some(2),
            sdp: "answer peer2".into()
        }
    );
    say(
        &room,
        &student,
        3,
        ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: Default::default(),
        },
    )
    .await;
    reply(&mut student, 3).await;
    assert_eq!(
        port.take(),
        [
            "add peer2 publish=true muted=false",
            "add peer3 publish=false muted=false"
        ]
    );

    // A second offer renegotiates the same peer; an answer goes to it too.
    say(
        &room,
        &student,
        4,
        ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: Default::default(),
        },
    )
    .await;
    reply(&mut student, 4).await;
    say(
        &room,
        &student,
        5,
        ClientMessage::Answer { sdp: "v=0".into() },
    )
    .await;
    assert_eq!(reply(&mut student, 5).await, ServerMessage::Ok { id: 5 });
    assert_eq!(port.take(), ["renegotiate peer3", "answer peer3"]);

    // Stage and mute reach the media plane before the moderator's ok.
    for (id, message) in [
        (
            6,
            ClientMessage::InviteToStage {
                participant: student.participant,
            },
        ),
        (
            7,
            ClientMessage::Mute {
                participant: student.participant,
            },
        ),
        (
            8,
            ClientMessage::RemoveFromStage {
                participant: student.participant,
            },
        ),
    ] {
        say(&room, &teacher, id, message).await;
        assert_eq!(reply(&mut teacher, id).await, ServerMessage::Ok { id });
    }
    assert_eq!(
        port.take(),
        [
            "publish peer3 true",
            "mute peer3 true",
            "publish peer3 false"
        ]
    );

    // Media notices reach the peer's connection, naming participants.
    rooms
        .deliver_media(MediaNotice::TrackStarted {
            subscriber: PeerId(3),
            mid: "3".into(),
            publisher: PeerId(2),
            publisher_mid: "0".into(),
            kind: classroom_protocol::signal::MediaKind::Audio,
        })
        .await;
    let track = loop {
        let Some((_, Outbound::Text(text))) = student.outbox.recv().await else {
            panic!("closed")
        };
        if text.contains("\"track\"") {
            break serde_json::from_str::<ServerMessage>(&text).expect("a message");
        }
    };
    assert_eq!(
        track,
        ServerMessage::Track {
            mid: "3".into(),
            participant: teacher.participant,
            kind: classroom_protocol::signal::MediaKind::Audio,
            source: TrackSource::Microphone,
        }
    );

    // A dropped connection takes its peer; the reconnect gets a new one, still muted.
    let dropped = RoomCommand::Disconnected {
        participant: student.participant,
        connection: student.connection,
    };
    room.commands.send(dropped).await.expect("the room runs");
    let (_, mut again) = join(&rooms, claims(2, ParticipantRole::Student)).await;
    say(
        &room,
        &again,
        9,
        ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: Default::default(),
        },
    )
    .await;
    reply(&mut again, 9).await;
    assert_eq!(
        port.take(),
        ["remove peer3", "add peer4 publish=false muted=true"]
    );

    // Leaving removes the peer.
    say(&room, &again, 10, ClientMessage::Leave).await;
    say(&room, &teacher, 11, ClientMessage::Ping).await;
    reply(&mut teacher, 11).await;
    assert_eq!(port.take(), ["remove peer4"]);
}

#[tokio::test]
async fn the_recorder_hears_the_recording_and_the_room_while_it_records() {
    let port = Arc::new(FakePort::default());
    let (events, mut heard) = mpsc::unbounded_channel();
    let rooms = Rooms::with_media(SignalingConfig::default(), events, port);
    let (room, mut teacher) = join(&rooms, claims(1, ParticipantRole::Teacher)).await;
    let (_, mut student) = join(&rooms, claims(2, ParticipantRole::Student)).await;
    let sources = BTreeMap::from([("1".to_string(), TrackSource::Screen)]);
    let offer = ClientMessage::Offer {
        sdp: "v=0".into(),
        sources: sources.clone(),
    };
    say(&room, &teacher, 1, offer).await;
    reply(&mut teacher, 1).await;
    let chat = |text: &str| ClientMessage::Chat { text: text.into() };
    say(&room, &student, 2, chat("before")).await;
    reply(&mut student, 2).await;

    // The course's default starts it, as the server does when the lesson goes live.
    rooms
        .start_recording(&RoomName::for_lesson(LessonId(1)))
        .await;
    say(&room, &student, 3, chat("during")).await;
    reply(&mut student, 3).await;
    say(&room, &teacher, 4, ClientMessage::StopRecording).await;
    reply(&mut teacher, 4).await;
    say(&room, &student, 5, chat("after")).await;
    reply(&mut student, 5).await;

    let mut seen = Vec::new();
    while let Ok(event) = heard.try_recv() {
        match event {
            RoomEvent::Recording { effect, .. } => seen.push(format!("{effect:?}")),
            RoomEvent::Activity { activity, .. } => seen.push(match activity {
                RoomActivity::Participants(p) => format!("participants {}", p.len()),
                RoomActivity::Publisher {
                    peer,
                    participant,
                    sources: s,
                } => {
                    assert_eq!(s, sources);
                    format!("publisher {peer} {participant}")
                }
                RoomActivity::Broadcast(ServerMessage::Chat { message }) => {
                    format!("chat {}", message.text)
                }
                RoomActivity::Broadcast(ServerMessage::Recording { state }) => {
                    format!("state {}", state.as_str())
                }
                RoomActivity::Broadcast(other) => format!("{other:?}"),
            }),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "Started",
            "participants 2",
            "publisher peer1 p1",
            "state recording",
            "chat during",
            "Stopped",
            "state off"
        ]
    );
}
