//! The teacher's overview of the breakout rooms, in the room core. Speaking to every room: the
//! main room decides and tells the media plane (for the moderator's peers there) and the
//! session (which carries it into each room it moves to); a breakout room carries it for the
//! peers it has, and names the audio that reaches it from outside `voice_track`. Who speaks in
//! each room: a breakout room tells the main room its speakers' users, and the main room tells
//! its moderators, by their ids there.

use std::time::Instant;

use classroom_protocol::signal::{BreakoutMode, BreakoutRequest, ClientMessage, MediaKind};
use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole, RoomName, UserId};

use super::test_class::{Class, refusal};
use super::*;
use crate::media::{MediaNotice, Mid, PeerId, PeerIds};

const LESSON: LessonId = LessonId(12);

fn open_rooms(rooms: u32) -> ClientMessage {
    ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms,
            mode: BreakoutMode::Choose,
            assignment: Vec::new(),
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        },
    }
}

fn speak(on: bool) -> ClientMessage {
    ClientMessage::SpeakToBreakouts { on }
}

/// `participant` offers on its own connection and the media plane opens the peer: its id and
/// what the opening gave.
fn open_peer(class: &mut Class, participant: ParticipantId) -> (PeerId, Vec<Output>) {
    let (request, peer) = offer(class, participant);
    let out = answered(class, request);
    (peer, out)
}

/// `participant` offers: the media request and the peer it opens.
fn offer(class: &mut Class, participant: ParticipantId) -> (RequestId, PeerId) {
    let out = class.input(Input::Message {
        participant,
        connection: ConnectionId(participant.0),
        id: None,
        message: ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: Default::default(),
        },
    });
    let (request, peer) = out
        .iter()
        .find_map(|o| match o {
            Output::ToMedia(MediaCommand::AddPeer { request, peer, .. }) => Some((*request, *peer)),
            _ => None,
        })
        .expect("a peer asked for");
    (request, peer)
}

/// The media plane opened the peer of `request`.
fn answered(class: &mut Class, request: RequestId) -> Vec<Output> {
    class.input(Input::MediaReply(MediaReply::Answer {
        request,
        result: Ok("answer".into()),
    }))
}

fn voice_command(peer: PeerId, lesson: Option<LessonId>) -> Output {
    Output::ToMedia(MediaCommand::SetVoiceBroadcast { peer, lesson })
}

fn voice_list(out: &[Output]) -> Option<Vec<ParticipantId>> {
    out.iter().rev().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Breakouts { breakouts },
            ..
        } => Some(
            breakouts
                .as_ref()
                .map(|b| b.voice.clone())
                .unwrap_or_default(),
        ),
        _ => None,
    })
}

#[test]
fn the_main_room_turns_a_moderators_voice_on_for_their_peers_and_session_and_off_at_close() {
    let mut class = Class::with_room(LESSON, |room| room.with_media(PeerIds::default()));
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (student, _) = class.join(2, ParticipantRole::Student);
    // The teacher's peer is still opening when the voice turns on: the voice reaches it once
    // it is open.
    let (request, peer) = offer(&mut class, teacher);

    let out = class.say(teacher, speak(true));
    assert_eq!(
        refusal(&out),
        Some(ErrorCode::BreakoutState),
        "no rooms yet"
    );
    class.say(teacher, open_rooms(2));
    let out = class.say(student, speak(true));
    assert!(
        refusal(&out).is_some(),
        "students do not speak to every room"
    );
    assert!(!out.contains(&voice_command(peer, Some(LESSON))));

    let out = class.say(teacher, speak(true));
    assert_eq!(refusal(&out), None, "{out:?}");
    assert!(
        !out.iter().any(|o| matches!(o, Output::ToMedia(_))),
        "no peer open yet: {out:?}"
    );
    assert!(out.contains(&Output::Voice {
        connection: ConnectionId(teacher.0),
        on: true
    }));
    assert_eq!(voice_list(&out), Some(vec![teacher]), "everyone sees who");
    let opened = answered(&mut class, request);
    assert!(
        opened.contains(&voice_command(peer, Some(LESSON))),
        "{opened:?}"
    );
    let again = class.say(teacher, speak(true));
    assert!(
        !again
            .iter()
            .any(|o| matches!(o, Output::ToMedia(_) | Output::Voice { .. })),
        "on twice is on once: {again:?}"
    );

    // Back from a visit with a new peer: the voice goes on with it.
    class.say(teacher, ClientMessage::VisitBreakout { room: Some(0) });
    class.say(teacher, ClientMessage::VisitBreakout { room: None });
    let (back, opened) = open_peer(&mut class, teacher);
    assert!(
        opened.contains(&voice_command(back, Some(LESSON))),
        "{opened:?}"
    );

    let out = class.say(teacher, ClientMessage::CloseBreakouts);
    assert!(out.contains(&voice_command(back, None)), "{out:?}");
    assert!(out.contains(&Output::Voice {
        connection: ConnectionId(teacher.0),
        on: false
    }));
    let reopened = class.say(teacher, open_rooms(1));
    assert_eq!(
        voice_list(&reopened),
        Some(vec![]),
        "a new round starts silent"
    );
    assert!(
        !reopened.iter().any(|o| matches!(
            o,
            Output::ToMedia(MediaCommand::SetVoiceBroadcast { .. }) | Output::Voice { .. }
        )),
        "{reopened:?}"
    );
}

#[test]
fn a_breakout_room_carries_the_voice_for_a_visitors_peers_and_names_audio_from_outside() {
    let now = Instant::now();
    let name = RoomName::for_breakout(LESSON, 1, 0);
    let room =
        Room::new(name.clone(), LESSON, RoomConfig::default(), now).with_media(PeerIds::default());
    let mut class = Class {
        room,
        lesson: LESSON,
        start: now,
        now,
    };
    let mut claims = test_claims(1, ParticipantRole::Teacher, LESSON, CourseId(1), "b1");
    claims.room = name;
    let out = class.input(Input::Join {
        connection: ConnectionId(1),
        id: None,
        claims: Box::new(claims),
        opened_at: Some(now),
        edge: None,
        go_live: false,
    });
    let visitor = match out.first() {
        Some(Output::JoinDecided { result: Ok(id), .. }) => *id,
        other => panic!("joined first: {other:?}"),
    };
    let (peer, _) = open_peer(&mut class, visitor);
    let out = class.input(Input::Voice {
        participant: visitor,
        on: true,
    });
    assert_eq!(out, vec![voice_command(peer, Some(LESSON))]);
    let out = class.input(Input::Voice {
        participant: ParticipantId(99),
        on: true,
    });
    assert!(out.is_empty(), "nobody here by that id");

    // Audio from a peer this room never opened: the voice of the lesson.
    let out = class.input(Input::MediaEvent(MediaNotice::TrackStarted {
        subscriber: peer,
        mid: Mid::from("3".to_owned()),
        publisher: PeerId(777),
        publisher_mid: Mid::from("0".to_owned()),
        kind: MediaKind::Audio,
    }));
    assert_eq!(
        out,
        vec![Output::SendToConnection {
            connection: ConnectionId(1),
            message: ServerMessage::VoiceTrack { mid: "3".into() },
        }]
    );
    let out = class.input(Input::Voice {
        participant: visitor,
        on: false,
    });
    assert_eq!(out, vec![voice_command(peer, None)]);

    // Its speakers go to the main room as users (ids differ between rooms).
    let out = class.input(Input::MediaEvent(MediaNotice::Speakers {
        room: RoomName::for_breakout(LESSON, 1, 0),
        peers: vec![peer],
    }));
    assert!(
        out.contains(&Output::RoomSpeakers {
            users: vec![UserId(1)]
        }),
        "{out:?}"
    );
}

#[test]
fn a_rooms_speakers_reach_the_moderators_by_their_main_room_ids_on_change_only() {
    let mut class = Class::with_room(LESSON, |room| room.with_media(PeerIds::default()));
    let (teacher, _) = class.join(1, ParticipantRole::Teacher);
    let (first, _) = class.join(2, ParticipantRole::Student);
    let (second, _) = class.join(3, ParticipantRole::Student);
    let by_hand = ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms: 2,
            mode: BreakoutMode::ByHand,
            assignment: vec![vec![first], vec![second]],
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        },
    };
    assert_eq!(refusal(&class.say(teacher, by_hand)), None);
    let room = |round, index| RoomName::for_breakout(LESSON, round, index);
    let speakers = |class: &mut Class, name: RoomName, users: Vec<i64>| {
        class.input(Input::BreakoutSpeakers {
            room: name,
            users: users.into_iter().map(UserId).collect(),
        })
    };
    let to_teacher = |room: u32, speakers: Vec<ParticipantId>| {
        vec![Output::Send {
            to: teacher,
            message: ServerMessage::BreakoutSpeakers { room, speakers },
        }]
    };
    // User 3 is in room 1, not 0: a stale list names only who is there.
    let out = speakers(&mut class, room(1, 0), vec![2, 3]);
    assert_eq!(out, to_teacher(0, vec![first]));
    assert!(
        speakers(&mut class, room(1, 0), vec![2]).is_empty(),
        "no change"
    );
    let out = speakers(&mut class, room(1, 1), vec![3]);
    assert_eq!(out, to_teacher(1, vec![second]));
    let out = speakers(&mut class, room(1, 0), vec![]);
    assert_eq!(out, to_teacher(0, vec![]), "silence");
    assert!(
        speakers(&mut class, room(7, 0), vec![2]).is_empty(),
        "another round's room"
    );
}
