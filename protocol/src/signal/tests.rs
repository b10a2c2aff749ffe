use super::*;

#[test]
fn envelopes_are_flat_json() {
    let text = r#"{"v":1,"id":7,"type":"chat","text":"hello"}"#;
    let envelope: ClientEnvelope = serde_json::from_str(text).expect("a chat envelope");
    assert_eq!(envelope.id, Some(7));
    assert_eq!(
        envelope.message,
        ClientMessage::Chat {
            text: "hello".into()
        }
    );
    let back = serde_json::to_string(&envelope).expect("serializes");
    assert_eq!(back, text);

    let raise: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"type":"raise_hand"}"#).expect("no id");
    assert_eq!((raise.id, raise.message), (None, ClientMessage::RaiseHand));
    assert!(serde_json::from_str::<ClientEnvelope>(r#"{"v":1,"type":"fly"}"#).is_err());
}

#[test]
fn media_messages_are_flat_json() {
    let offer: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"id":2,"type":"offer","sdp":"v=0"}"#).expect("an offer");
    assert_eq!(
        offer.message,
        ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: BTreeMap::new()
        }
    );
    let answer = ServerMessage::Answer {
        id: Some(2),
        sdp: "v=0".into(),
    };
    assert_eq!(
        serde_json::to_string(&answer).expect("serializes"),
        r#"{"type":"answer","id":2,"sdp":"v=0"}"#
    );
    let track = ServerMessage::Track {
        mid: "1".into(),
        participant: ParticipantId(3),
        kind: MediaKind::Video,
        source: TrackSource::Screen,
    };
    assert_eq!(
        serde_json::to_string(&track).expect("serializes"),
        r#"{"type":"track","mid":"1","participant":3,"kind":"video","source":"screen"}"#
    );
    let encoder = ServerMessage::Encoder {
        state: EncoderState::Refused,
        reason: Some("no".into()),
    };
    assert_eq!(
        serde_json::to_string(&encoder).expect("serializes"),
        r#"{"type":"encoder","state":"refused","reason":"no"}"#
    );
    let ended = ServerMessage::TrackEnded { mid: "1".into() };
    assert_eq!(
        serde_json::to_string(&ended).expect("serializes"),
        r#"{"type":"track_ended","mid":"1"}"#
    );
}

#[test]
fn slide_messages_are_flat_json() {
    let open: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"id":4,"type":"open_document","document":12,"pages":9}"#)
            .expect("an open_document");
    assert_eq!(
        open.message,
        ClientMessage::OpenDocument {
            document: DocumentId(12),
            pages: 9,
            page: 1
        }
    );
    let turn: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"type":"turn_page","page":3}"#).expect("a turn");
    assert_eq!(turn.message, ClientMessage::TurnPage { page: 3 });
    let slide = ServerMessage::Slide {
        slide: Some(Slide {
            document: DocumentId(12),
            page: 3,
            pages: 9,
            by: ParticipantId(1),
            browse: false,
        }),
    };
    assert_eq!(
        serde_json::to_string(&slide).expect("serializes"),
        r#"{"type":"slide","slide":{"document":12,"page":3,"pages":9,"by":1}}"#
    );
    assert_eq!(
        serde_json::to_string(&ServerMessage::Slide { slide: None }).expect("serializes"),
        r#"{"type":"slide","slide":null}"#
    );
}

#[test]
fn board_messages_are_flat_json() {
    let draw: ClientEnvelope = serde_json::from_str(
        r##"{"v":1,"id":5,"type":"draw","tool":"line","colour":"#1971c2","width":20,"points":[[0,0],[10000,10000]]}"##,
    )
    .expect("a draw");
    assert_eq!(
        draw.message,
        ClientMessage::Draw {
            tool: Tool::Line,
            colour: Colour([0x19, 0x71, 0xc2]),
            width: 20,
            points: vec![Point(0, 0), Point(10_000, 10_000)],
            text: None,
        }
    );
    assert!(
        serde_json::from_str::<ClientEnvelope>(
            r#"{"v":1,"type":"draw","tool":"pen","colour":"red","width":20,"points":[]}"#
        )
        .is_err(),
        "a colour is #rrggbb"
    );
    assert!(
        serde_json::from_str::<ClientEnvelope>(
            r##"{"v":1,"type":"draw_more","points":[[70000,1]]}"##
        )
        .is_err(),
        "coordinates are 16-bit"
    );
    let pointer: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"type":"pointer","at":null}"#).expect("a pointer");
    assert_eq!(pointer.message, ClientMessage::Pointer { at: None });
    let blank: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"type":"show_blank_board"}"#).expect("a board");
    assert_eq!(blank.message, ClientMessage::ShowBlankBoard { page: 1 });
    let board = ServerMessage::Board {
        board: BoardSnapshot {
            page: Some(BoardPage {
                document: None,
                page: 1,
            }),
            blank_pages: Some(20),
            strokes: Vec::new(),
            pens: Vec::new(),
        },
    };
    assert_eq!(
        serde_json::to_string(&board).expect("serializes"),
        r#"{"type":"board","board":{"page":{"document":null,"page":1},"blank_pages":20,"strokes":[]}}"#
    );
    let erased = ServerMessage::StrokeErased { id: StrokeId(9) };
    assert_eq!(
        serde_json::to_string(&erased).expect("serializes"),
        r#"{"type":"stroke_erased","id":9}"#
    );
}

#[test]
fn poll_messages_are_flat_json() {
    let ask: ClientEnvelope = serde_json::from_str(
        r#"{"v":1,"id":5,"type":"ask_poll","poll":{"kind":"multiple_choice","question":"Which?","options":["a","b","c"],"correct":{"choices":[0,2]},"timer_secs":30}}"#,
    )
    .expect("an ask_poll");
    assert_eq!(
        ask.message,
        ClientMessage::AskPoll {
            poll: PollQuestion {
                kind: PollKind::MultipleChoice,
                question: "Which?".into(),
                options: vec!["a".into(), "b".into(), "c".into()],
                correct: Some(PollAnswer::Choices(vec![0, 2])),
                anonymous: false,
                timer_secs: Some(30),
                changeable: false,
            }
        }
    );
    let quick: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"type":"ask_quick_poll","preset":"abcd"}"#)
            .expect("a quick poll");
    assert_eq!(
        quick.message,
        ClientMessage::AskQuickPoll {
            preset: QuickPoll::Abcd
        }
    );
    for (json, answer) in [
        (r#"{"number":-4.5}"#, PollAnswer::Number(-4.5)),
        (r#"{"text":"Paris"}"#, PollAnswer::Text("Paris".into())),
        (r#"{"choices":[1]}"#, PollAnswer::Choices(vec![1])),
    ] {
        let text = format!(r#"{{"v":1,"type":"answer_poll","poll":2,"answer":{json}}}"#);
        let envelope: ClientEnvelope = serde_json::from_str(&text).expect("an answer");
        assert_eq!(
            envelope.message,
            ClientMessage::AnswerPoll {
                poll: PollId(2),
                answer
            }
        );
    }
    // An answer is one kind of value.
    assert!(
        serde_json::from_str::<ClientEnvelope>(
            r#"{"v":1,"type":"answer_poll","poll":2,"answer":{"number":1,"text":"x"}}"#
        )
        .is_err()
    );
    let closed = ServerMessage::Poll {
        poll: Box::new(PollInfo {
            id: PollId(2),
            kind: PollKind::TrueFalse,
            question: String::new(),
            options: vec!["True".into(), "False".into()],
            anonymous: false,
            changeable: true,
            quiz: false,
            asked_at_ms: 10,
            closes_at_ms: None,
            closes_in_ms: None,
            closed: true,
        }),
    };
    assert_eq!(
        serde_json::to_string(&closed).expect("serializes"),
        r#"{"type":"poll","poll":{"id":2,"kind":"true_false","question":"","options":["True","False"],"anonymous":false,"changeable":true,"quiz":false,"asked_at_ms":10,"closed":true}}"#
    );
}

#[test]
fn server_messages_are_tagged() {
    let text = serde_json::to_string(&ServerMessage::Ok { id: 3 }).expect("serializes");
    assert_eq!(text, r#"{"type":"ok","id":3}"#);
    let left = ServerMessage::ParticipantLeft {
        participant: ParticipantId(4),
        reason: LeaveReason::TimedOut,
    };
    assert_eq!(
        serde_json::to_string(&left).expect("serializes"),
        r#"{"type":"participant_left","participant":4,"reason":"timed_out"}"#
    );
    let recording = ServerMessage::Recording {
        state: RecordingState::Paused,
    };
    assert_eq!(
        serde_json::to_string(&recording).expect("serializes"),
        r#"{"type":"recording","state":"paused"}"#
    );
    let refused = ServerMessage::Error {
        id: Some(9),
        code: ErrorCode::MissingGrant,
        message: "no".into(),
        grant: Some("moderate".into()),
    };
    let text =
        r#"{"type":"error","id":9,"code":"missing_grant","message":"no","grant":"moderate"}"#;
    assert_eq!(serde_json::to_string(&refused).expect("serializes"), text);
    assert_eq!(
        serde_json::from_str::<ServerMessage>(text).expect("parses"),
        refused
    );
    let start: ClientEnvelope =
        serde_json::from_str(r#"{"v":1,"id":3,"type":"start_recording"}"#).expect("parses");
    assert_eq!(start.message, ClientMessage::StartRecording);
}
