//! The room as its task drives it: inputs in through `handle_input`, outputs out through
//! `poll_output`, on a virtual clock (instants made from one start), no tokio and no media
//! plane: the media plane's replies are inputs the tests choose, in any order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    ClientMessage, ConnectionQuality, EncoderState, LeaveReason, MediaKind, ParticipantId,
    QualityUpdate, ServerMessage,
};
use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole, TrackSource, UserId};

use super::*;
use crate::media::{MediaError, MediaNotice, PeerAccess, PeerId, PeerIds};

const LESSON: LessonId = LessonId(5);

struct Core {
    room: Room,
    t0: Instant,
}

impl Core {
    fn new() -> Self {
        let t0 = Instant::now();
        let room = Room::new(
            RoomName::for_lesson(LESSON),
            LESSON,
            RoomConfig::default(),
            t0,
        )
        .with_media(PeerIds::default());
        Core { room, t0 }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    /// One input at `secs` on the virtual clock, and everything it gave.
    fn step(&mut self, secs: u64, input: Input) -> Vec<Output> {
        let now = self.at(secs);
        self.room.handle_input(now, input);
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    fn join(&mut self, user: i64, role: ParticipantRole, connection: u64) -> ParticipantId {
        let claims = test_claims(user, role, LESSON, CourseId(1), &format!("t{user}"));
        let input = Input::Join {
            connection: ConnectionId(connection),
            id: None,
            claims: Box::new(claims),
            opened_at: Some(self.t0),
            edge: None,
            go_live: true,
        };
        match self.step(0, input).first() {
            Some(Output::JoinDecided {
                result: Ok(participant),
                ..
            }) => *participant,
            other => panic!("the join is decided first, got {other:?}"),
        }
    }

    fn say(
        &mut self,
        participant: ParticipantId,
        connection: u64,
        id: u64,
        message: ClientMessage,
    ) -> Vec<Output> {
        let input = Input::Message {
            participant,
            connection: ConnectionId(connection),
            id: Some(id),
            message,
        };
        self.step(0, input)
    }

    fn offer(
        &mut self,
        participant: ParticipantId,
        connection: u64,
        sources: &[(&str, TrackSource)],
    ) -> Vec<Output> {
        let sources = sources
            .iter()
            .map(|(mid, source)| (mid.to_string(), *source))
            .collect();
        let offer = ClientMessage::Offer {
            sdp: "v=0".into(),
            sources,
        };
        self.say(participant, connection, 1, offer)
    }

    fn reply(&mut self, request: RequestId, result: Result<String, MediaError>) -> Vec<Output> {
        self.step(0, Input::MediaReply(MediaReply::Answer { request, result }))
    }

    fn done(&mut self, request: RequestId, result: Result<(), MediaError>) -> Vec<Output> {
        self.step(0, Input::MediaReply(MediaReply::Done { request, result }))
    }

    /// Offers and lets the media plane open the peer: its id.
    fn open(
        &mut self,
        participant: ParticipantId,
        connection: u64,
        sources: &[(&str, TrackSource)],
    ) -> PeerId {
        let out = self.offer(participant, connection, sources);
        let Some((request, peer, _)) = add_peer(&out) else {
            panic!("no peer asked for: {out:?}")
        };
        let answered = self.reply(request, Ok(format!("answer {peer}")));
        assert!(
            answered.iter().any(|o| matches!(
                o,
                Output::SendToConnection {
                    message: ServerMessage::Answer { .. },
                    ..
                }
            )),
            "{answered:?}"
        );
        peer
    }
}

fn add_peer(out: &[Output]) -> Option<(RequestId, PeerId, PeerAccess)> {
    out.iter().find_map(|o| match o {
        Output::ToMedia(MediaCommand::AddPeer {
            request,
            peer,
            access,
            ..
        }) => Some((*request, *peer, *access)),
        _ => None,
    })
}

fn commands(out: &[Output]) -> Vec<&MediaCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToMedia(command) => Some(command),
            _ => None,
        })
        .collect()
}

fn sent_to(out: &[Output], connection: u64) -> Vec<&ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendToConnection {
                connection: c,
                message,
            } if *c == ConnectionId(connection) => Some(message),
            _ => None,
        })
        .collect()
}

fn error_code(out: &[Output]) -> Option<ErrorCode> {
    out.iter().find_map(|o| match o {
        Output::SendToConnection {
            message: ServerMessage::Error { code, .. },
            ..
        }
        | Output::Send {
            message: ServerMessage::Error { code, .. },
            ..
        } => Some(*code),
        _ => None,
    })
}

fn position(out: &[Output], wanted: impl Fn(&Output) -> bool) -> usize {
    out.iter()
        .position(wanted)
        .unwrap_or_else(|| panic!("not in {out:?}"))
}

#[test]
fn an_offer_opens_a_peer_with_the_grants_in_force_and_is_answered_on_its_connection() {
    let mut core = Core::new();
    let teacher = core.join(1, ParticipantRole::Teacher, 1);
    let out = core.offer(teacher, 1, &[("1", TrackSource::Screen)]);
    let (request, peer, access) = add_peer(&out).expect("a peer asked for");
    assert_eq!(
        out.first(),
        Some(&Output::Filing(PeerFiling::Routed(peer))),
        "routed before the media plane reports its tracks"
    );
    assert_eq!(
        access,
        PeerAccess {
            publish: true,
            audio_muted: false,
            connection_opened: Some(core.t0),
            edge: None,
        }
    );
    assert_eq!(core.room.peer_participant(peer), None, "not open yet");

    let out = core.reply(request, Ok("answer".into()));
    assert_eq!(
        sent_to(&out, 1),
        [&ServerMessage::Answer {
            id: Some(1),
            sdp: "answer".into()
        }]
    );
    assert!(out.contains(&Output::Filing(PeerFiling::Published {
        peer,
        role: ParticipantRole::Teacher,
        sources: BTreeMap::from([("1".to_string(), TrackSource::Screen)]),
    })));
    assert_eq!(core.room.peer_participant(peer), Some(teacher));

    // A later offer renegotiates; a peer the media plane lost is opened anew.
    let out = core.offer(teacher, 1, &[]);
    let [
        MediaCommand::AcceptOffer {
            request,
            peer: same,
            ..
        },
    ] = commands(&out)[..]
    else {
        panic!("a renegotiation: {out:?}")
    };
    assert_eq!(*same, peer);
    let out = core.reply(*request, Err(MediaError::NoPeer));
    let (_, new_peer, _) = add_peer(&out).expect("a new peer");
    assert!(new_peer > peer, "ids are never reused");
    assert!(out.contains(&Output::Filing(PeerFiling::Forgotten(peer))));
    assert_eq!(core.room.peer_participant(peer), None);
}

#[test]
fn refused_offers_change_nothing() {
    let mut core = Core::new();
    let student = core.join(2, ParticipantRole::Student, 2);
    // A student may not declare a screen share.
    let out = core.offer(student, 2, &[("0", TrackSource::Screen)]);
    assert_eq!(commands(&out), Vec::<&MediaCommand>::new());
    assert!(matches!(
        sent_to(&out, 2)[..],
        [ServerMessage::Error { code: ErrorCode::MissingGrant, grant: Some(grant), .. }]
            if grant == "publish:screen"
    ));
    // The media plane refuses the SDP: the peer is forgotten, its id spent.
    let out = core.offer(student, 2, &[]);
    let (request, peer, access) = add_peer(&out).expect("asked");
    assert!(!access.publish, "students publish only on stage");
    let out = core.reply(request, Err(MediaError::InvalidSdp("no".into())));
    assert_eq!(
        out.first(),
        Some(&Output::Filing(PeerFiling::Forgotten(peer)))
    );
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidSdp));
    // Someone not (or no longer) in the room.
    let out = core.offer(ParticipantId(99), 9, &[]);
    assert_eq!(error_code(&out), Some(ErrorCode::NotJoined));
    // A room without a media plane has no media to offer.
    let mut plain = Room::new(
        RoomName::for_lesson(LESSON),
        LESSON,
        RoomConfig::default(),
        core.t0,
    );
    let claims = test_claims(1, ParticipantRole::Teacher, LESSON, CourseId(1), "t");
    let (teacher, _) = plain.join(&claims, ConnectionId(1)).expect("joins");
    let offer = ClientMessage::Offer {
        sdp: "v=0".into(),
        sources: BTreeMap::new(),
    };
    let input = Input::Message {
        participant: teacher,
        connection: ConnectionId(1),
        id: Some(3),
        message: offer,
    };
    plain.handle_input(core.t0, input);
    let out: Vec<Output> = std::iter::from_fn(|| plain.poll_output()).collect();
    assert_eq!(error_code(&out), Some(ErrorCode::MediaUnavailable));
}

#[test]
fn grants_revoked_while_a_peer_opens_are_applied_when_it_opens() {
    let mut core = Core::new();
    let teacher = core.join(1, ParticipantRole::Teacher, 1);
    let student = core.join(2, ParticipantRole::Student, 2);
    let invite = ClientMessage::InviteToStage {
        participant: student,
    };
    core.say(teacher, 1, 10, invite);
    let out = core.offer(student, 2, &[]);
    let (request, peer, access) = add_peer(&out).expect("asked");
    assert!(access.publish && !access.audio_muted);

    // Off stage and muted before the media plane answers: no peer to tell yet.
    let off = ClientMessage::RemoveFromStage {
        participant: student,
    };
    let out = core.say(teacher, 1, 11, off);
    assert_eq!(commands(&out), Vec::<&MediaCommand>::new());
    let mute = ClientMessage::Mute {
        participant: student,
    };
    core.say(teacher, 1, 12, mute);

    let out = core.reply(request, Ok("answer".into()));
    let revoked = position(&out, |o| {
        *o == Output::ToMedia(MediaCommand::SetPublishAllowed {
            peer,
            allowed: false,
        })
    });
    let muted = position(&out, |o| {
        *o == Output::ToMedia(MediaCommand::SetAudioMuted { peer, muted: true })
    });
    let answered = position(&out, |o| {
        matches!(
            o,
            Output::SendToConnection {
                message: ServerMessage::Answer { .. },
                ..
            }
        )
    });
    assert!(revoked < answered && muted < answered, "{out:?}");

    // From now on every change reaches the peer before anyone hears of it.
    let invite = ClientMessage::InviteToStage {
        participant: student,
    };
    let out = core.say(teacher, 1, 13, invite);
    let allowed = position(&out, |o| {
        *o == Output::ToMedia(MediaCommand::SetPublishAllowed {
            peer,
            allowed: true,
        })
    });
    let told = position(&out, |o| {
        matches!(
            o,
            Output::Send {
                message: ServerMessage::GrantsChanged { .. },
                ..
            }
        )
    });
    assert!(allowed < told, "{out:?}");
}

#[test]
fn a_connection_that_goes_while_its_peer_opens_takes_the_peer() {
    let mut core = Core::new();
    let student = core.join(2, ParticipantRole::Student, 2);
    let out = core.offer(student, 2, &[]);
    let (request, peer, _) = add_peer(&out).expect("asked");
    let gone = Input::Disconnected {
        participant: student,
        connection: ConnectionId(2),
    };
    core.step(1, gone);
    let out = core.reply(request, Ok("answer".into()));
    assert_eq!(
        out,
        [
            Output::Filing(PeerFiling::Forgotten(peer)),
            Output::ToMedia(MediaCommand::RemovePeer { peer }),
        ],
        "nobody to answer, nothing left open"
    );
    assert_eq!(core.room.peer_participant(peer), None);
}

#[test]
fn answers_and_video_sizes_go_to_the_connections_peer() {
    let mut core = Core::new();
    let student = core.join(2, ParticipantRole::Student, 2);
    let answer = || ClientMessage::Answer { sdp: "v=0".into() };
    let size = || ClientMessage::VideoSize {
        mid: "3".into(),
        width: 320,
        height: 180,
    };
    let out = core.say(student, 2, 1, answer());
    assert_eq!(error_code(&out), Some(ErrorCode::NoPendingOffer));
    let out = core.say(student, 2, 2, size());
    assert_eq!(error_code(&out), Some(ErrorCode::NoMediaSession));

    let peer = core.open(student, 2, &[]);
    let out = core.say(student, 2, 3, answer());
    let [
        MediaCommand::AcceptAnswer {
            request, peer: to, ..
        },
    ] = commands(&out)[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(*to, peer);
    let out = core.done(*request, Ok(()));
    assert_eq!(sent_to(&out, 2), [&ServerMessage::Ok { id: 3 }]);

    let out = core.say(student, 2, 4, size());
    let [
        MediaCommand::SetVideoSize {
            request,
            height: 180,
            ..
        },
    ] = commands(&out)[..]
    else {
        panic!("{out:?}")
    };
    let out = core.done(
        *request,
        Err(MediaError::UnknownMid(crate::media::Mid::from("3"))),
    );
    assert_eq!(error_code(&out), Some(ErrorCode::UnknownMid));
    assert_eq!(core.room.peer_participant(peer), Some(student), "kept");

    // The media plane lost the peer: forgotten, and the next answer has none.
    let out = core.say(student, 2, 5, size());
    let [MediaCommand::SetVideoSize { request, .. }] = commands(&out)[..] else {
        panic!("{out:?}")
    };
    let out = core.done(*request, Err(MediaError::NoPeer));
    assert!(out.contains(&Output::Filing(PeerFiling::Forgotten(peer))));
    let out = core.say(student, 2, 6, answer());
    assert_eq!(error_code(&out), Some(ErrorCode::NoPendingOffer));
    // A reply nobody waits for (answered already) changes nothing.
    assert!(core.done(*request, Ok(())).is_empty());
}

#[test]
fn media_events_name_participants_and_reach_the_peers_connection() {
    let mut core = Core::new();
    let teacher = core.join(1, ParticipantRole::Teacher, 1);
    let student = core.join(2, ParticipantRole::Student, 2);
    let teacher_peer = core.open(teacher, 1, &[("1", TrackSource::Screen)]);
    let student_peer = core.open(student, 2, &[]);

    let started = |publisher_mid: &str, kind| {
        Input::MediaEvent(MediaNotice::TrackStarted {
            subscriber: student_peer,
            mid: "3".into(),
            publisher: teacher_peer,
            publisher_mid: publisher_mid.into(),
            kind,
        })
    };
    let out = core.step(1, started("1", MediaKind::Video));
    assert_eq!(
        sent_to(&out, 2),
        [&ServerMessage::Track {
            mid: "3".into(),
            participant: teacher,
            kind: MediaKind::Video,
            source: TrackSource::Screen,
        }]
    );
    let out = core.step(1, started("0", MediaKind::Audio));
    assert!(
        matches!(
            sent_to(&out, 2)[..],
            [ServerMessage::Track {
                source: TrackSource::Microphone,
                ..
            }]
        ),
        "an undeclared m-line is the microphone"
    );

    let offer = MediaNotice::Offer {
        peer: student_peer,
        sdp: "offer".into(),
    };
    let out = core.step(1, Input::MediaEvent(offer));
    assert_eq!(
        sent_to(&out, 2),
        [&ServerMessage::Offer {
            sdp: "offer".into()
        }]
    );

    let speakers = MediaNotice::Speakers {
        room: RoomName::for_lesson(LESSON),
        peers: vec![student_peer, PeerId(999), teacher_peer, student_peer],
    };
    core.step(1, Input::StartRecording);
    let out = core.step(2, Input::MediaEvent(speakers));
    assert_eq!(
        out,
        [Output::Broadcast {
            except: None,
            message: ServerMessage::Speakers {
                speakers: vec![student, teacher]
            }
        }],
        "each once, in order; not recorded"
    );
    let quality = MediaNotice::Quality {
        peer: teacher_peer,
        quality: ConnectionQuality::Poor,
    };
    let out = core.step(2, Input::MediaEvent(quality));
    assert_eq!(
        out,
        [Output::Broadcast {
            except: None,
            message: ServerMessage::ConnectionQuality {
                updates: vec![QualityUpdate {
                    participant: teacher,
                    quality: ConnectionQuality::Poor
                }]
            }
        }]
    );

    // The media plane dropped the student's peer: forgotten; later notices reach nobody.
    let out = core.step(
        3,
        Input::MediaEvent(MediaNotice::PeerGone { peer: student_peer }),
    );
    assert_eq!(out, [Output::Filing(PeerFiling::Forgotten(student_peer))]);
    let ended = MediaNotice::TrackEnded {
        subscriber: student_peer,
        mid: "3".into(),
    };
    assert!(core.step(3, Input::MediaEvent(ended)).is_empty());
}

#[test]
fn a_dropped_connection_takes_its_peer_and_its_place_times_out() {
    let mut core = Core::new();
    let teacher = core.join(1, ParticipantRole::Teacher, 1);
    let student = core.join(2, ParticipantRole::Student, 2);
    let peer = core.open(student, 2, &[]);
    let gone = Input::Disconnected {
        participant: student,
        connection: ConnectionId(2),
    };
    let out = core.step(1, gone);
    assert_eq!(
        out[..2],
        [
            Output::Filing(PeerFiling::Forgotten(peer)),
            Output::ToMedia(MediaCommand::RemovePeer { peer }),
        ]
    );
    assert_eq!(core.room.poll_timeout(), Some(core.at(21)));
    assert!(
        core.step(20, Input::Timeout).is_empty(),
        "within the grace period"
    );
    let out = core.step(21, Input::Timeout);
    assert!(out.contains(&Output::Broadcast {
        except: None,
        message: ServerMessage::ParticipantLeft {
            participant: student,
            reason: LeaveReason::TimedOut
        }
    }));
    assert_eq!(core.room.poll_timeout(), None);

    // A second tab replaces the teacher's connection: the old one's peer goes with it.
    let old = core.open(teacher, 1, &[]);
    let claims = test_claims(1, ParticipantRole::Teacher, LESSON, CourseId(1), "t2");
    let again = Input::Join {
        connection: ConnectionId(11),
        id: Some(4),
        claims: Box::new(claims),
        opened_at: None,
        edge: None,
        go_live: true,
    };
    let out = core.step(22, again);
    let closed = position(&out, |o| {
        matches!(
            o,
            Output::Close {
                connection: ConnectionId(1),
                ..
            }
        )
    });
    let removed = position(&out, |o| {
        *o == Output::ToMedia(MediaCommand::RemovePeer { peer: old })
    });
    assert!(closed < removed);
    assert_eq!(
        out.last(),
        Some(&Output::Send {
            to: teacher,
            message: ServerMessage::Ok { id: 4 }
        }),
        "ok after the snapshot"
    );
}

#[test]
fn the_encoder_gets_a_peer_of_its_own_without_a_connection() {
    let identity = EncoderIdentity {
        user: UserId(1),
        name: "encoder".into(),
    };
    let started = || Input::EncoderStarted {
        identity: identity.clone(),
        mids: vec!["0".into(), "1".into()],
    };
    let mut plain = Room::new(
        RoomName::for_lesson(LESSON),
        LESSON,
        RoomConfig::default(),
        Instant::now(),
    );
    plain.handle_input(Instant::now(), started());
    assert_eq!(
        plain.poll_output(),
        Some(Output::EncoderAdmitted(Err(EncoderError::NoMedia)))
    );

    let mut core = Core::new();
    let student = core.join(2, ParticipantRole::Student, 2);
    let student_peer = core.open(student, 2, &[]);
    let out = core.step(1, started());
    let Some(Output::EncoderAdmitted(Ok(peer))) = out
        .iter()
        .find(|o| matches!(o, Output::EncoderAdmitted(_)))
        .cloned()
    else {
        panic!("{out:?}")
    };
    assert_eq!(out.first(), Some(&Output::Filing(PeerFiling::Routed(peer))));
    let encoder = core.room.encoder_participant().expect("in the room");
    assert_eq!(core.room.peer_participant(peer), Some(encoder));

    let track = MediaNotice::TrackStarted {
        subscriber: student_peer,
        mid: "4".into(),
        publisher: peer,
        publisher_mid: "1".into(),
        kind: MediaKind::Video,
    };
    let out = core.step(1, Input::MediaEvent(track));
    assert!(matches!(
        sent_to(&out, 2)[..],
        [ServerMessage::Track { source: TrackSource::Encoder, participant, .. }] if *participant == encoder
    ));
    // Nothing is ever sent on the encoder's behalf: it has no connection.
    let offer = MediaNotice::Offer {
        peer,
        sdp: "x".into(),
    };
    assert!(core.step(1, Input::MediaEvent(offer)).is_empty());

    // Started again (a reconnect): a new peer, the old one forgotten.
    let out = core.step(2, started());
    assert!(out.contains(&Output::Filing(PeerFiling::Forgotten(peer))));
    let stopped = Input::EncoderChanged {
        state: EncoderState::Stopped,
        reason: None,
    };
    let out = core.step(3, stopped);
    assert!(
        commands(&out)
            .iter()
            .any(|c| matches!(c, MediaCommand::RemovePeer { peer: p } if *p > peer))
    );
    assert_eq!(core.room.encoder_participant(), None);
}

#[test]
fn the_recorder_hears_the_room_and_its_publishers_while_it_records() {
    let mut core = Core::new();
    let teacher = core.join(1, ParticipantRole::Teacher, 1);
    let peer = core.open(teacher, 1, &[("1", TrackSource::Screen)]);
    let chat = |text: &str| ClientMessage::Chat { text: text.into() };
    let out = core.say(teacher, 1, 2, chat("before"));
    assert!(!out.iter().any(|o| matches!(o, Output::Activity(_))));

    let out = core.step(1, Input::StartRecording);
    let activities: Vec<&RoomActivity> = out
        .iter()
        .filter_map(|o| match o {
            Output::Activity(a) => Some(a),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            activities[..],
            [
                RoomActivity::Participants(present),
                RoomActivity::Publisher { peer: p, participant, .. },
                RoomActivity::Broadcast(ServerMessage::Recording { .. }),
            ] if present.len() == 1 && *p == peer && *participant == teacher
        ),
        "{activities:?}"
    );
    assert_eq!(
        out.first(),
        Some(&Output::Recording(RecordingEffect::Started))
    );

    let out = core.say(teacher, 1, 3, chat("during"));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Activity(RoomActivity::Broadcast(ServerMessage::Chat { .. }))
    )));
    // A renegotiation tells the recorder what the peer publishes now.
    let out = core.offer(teacher, 1, &[("1", TrackSource::Camera)]);
    let [MediaCommand::AcceptOffer { request, .. }] = commands(&out)[..] else {
        panic!("{out:?}")
    };
    let out = core.reply(*request, Ok("again".into()));
    assert!(out.contains(&Output::Activity(RoomActivity::Publisher {
        peer,
        participant: teacher,
        sources: BTreeMap::from([("1".to_string(), TrackSource::Camera)]),
    })));
}

#[test]
fn closing_removes_every_peer_left() {
    let mut core = Core::new();
    let teacher = core.join(1, ParticipantRole::Teacher, 1);
    let student = core.join(2, ParticipantRole::Student, 2);
    let a = core.open(teacher, 1, &[]);
    let b = core.open(student, 2, &[]);
    let out = core.step(5, Input::Closed);
    assert_eq!(
        commands(&out),
        [
            &MediaCommand::RemovePeer { peer: a },
            &MediaCommand::RemovePeer { peer: b }
        ]
    );
    assert!(core.step(5, Input::Closed).is_empty(), "once");
}
