use std::convert::Infallible;
use std::time::Duration;

use classroom_protocol::{CourseId, JoinClaims, LessonId, ParticipantRole};
use tokio::task::JoinHandle;

use super::*;
use crate::SignalingConfig;
use crate::media::MediaFuture;

#[test]
fn parse_names_what_is_wrong() {
    let code = |text: &str| parse_client_text(text, 100).err().map(|r| (r.code, r.id));
    assert_eq!(code("{"), Some((ErrorCode::MalformedJson, None)));
    assert_eq!(
        code(&"x".repeat(101)),
        Some((ErrorCode::MessageTooLarge, None))
    );
    assert_eq!(
        code(r#"{"id":3,"type":"ping"}"#),
        Some((ErrorCode::InvalidMessage, Some(3)))
    );
    assert_eq!(
        code(r#"{"v":2,"id":4,"type":"ping"}"#),
        Some((ErrorCode::UnsupportedVersion, Some(4)))
    );
    assert_eq!(
        code(r#"{"v":1,"id":5,"type":"fly"}"#),
        Some((ErrorCode::UnknownType, Some(5)))
    );
    assert_eq!(
        code(r#"{"v":1,"id":6}"#),
        Some((ErrorCode::UnknownType, Some(6)))
    );
    assert_eq!(
        code(r#"{"v":1,"id":6,"type":7}"#),
        Some((ErrorCode::UnknownType, Some(6)))
    );
    assert_eq!(
        code(r#"{"v":1,"id":7,"type":"chat"}"#),
        Some((ErrorCode::InvalidMessage, Some(7)))
    );
    assert_eq!(
        code(r#"{"v":1,"id":8,"type":"mute","participant":"x"}"#),
        Some((ErrorCode::InvalidMessage, Some(8)))
    );
    // A known type with a nested value of no known variant is a bad field, not a type.
    assert_eq!(
        code(r#"{"v":1,"id":10,"type":"offer","sdp":"v=0","sources":{"0":"x"}}"#),
        Some((ErrorCode::InvalidMessage, Some(10)))
    );
    assert!(parse_client_text(r#"{"v":1,"id":9,"type":"raise_hand"}"#, 100).is_ok());
    assert_eq!(code("[1,2]"), Some((ErrorCode::InvalidMessage, None)));
}

#[test]
fn the_message_types_are_the_protocols() {
    let types = client_message_types();
    for kind in [
        "join",
        "ping",
        "chat",
        "offer",
        "answer",
        "video_size",
        "leave",
    ] {
        assert!(types.contains(&kind), "{kind} in {types:?}");
    }
    assert!(!types.contains(&"fly"));
}

/// Join tokens for the session tests: the token is the user id, everyone is admitted.
struct Tokens;

impl TokenVerifier for Tokens {
    fn verify(&self, token: &str) -> Result<JoinClaims, InvalidToken> {
        let user: i64 = token.parse().map_err(|_| InvalidToken::Malformed)?;
        Ok(crate::room::test_claims(
            user,
            ParticipantRole::Student,
            LessonId(1),
            CourseId(1),
            token,
        ))
    }

    fn admit<'a>(&'a self, _: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The client's end of a session served over channels.
struct Client {
    send: mpsc::UnboundedSender<Result<Message, Infallible>>,
    received: mpsc::UnboundedReceiver<Message>,
    session: JoinHandle<()>,
    /// A test that waits past this (in paused time) fails rather than hangs.
    give_up: Instant,
}

impl Client {
    fn connect(rooms: &Arc<Rooms>) -> Client {
        Client::connect_to(rooms, Arc::new(Tokens))
    }

    fn connect_to(rooms: &Arc<Rooms>, verifier: Arc<dyn TokenVerifier>) -> Client {
        let (send, mut incoming) = mpsc::unbounded_channel();
        let (outgoing, received) = mpsc::unbounded_channel();
        let stream = futures_util::stream::poll_fn(move |cx| incoming.poll_recv(cx));
        let sink = futures_util::sink::unfold(outgoing, |out, message| async move {
            out.send(message).map(|()| out)
        });
        let session = tokio::spawn(serve(Box::pin(sink), stream, Arc::clone(rooms), verifier));
        Client {
            send,
            received,
            session,
            give_up: Instant::now() + Duration::from_secs(600),
        }
    }

    fn text(&self, text: &str) {
        self.send
            .send(Ok(Message::Text(text.into())))
            .expect("the session reads");
    }

    async fn join(rooms: &Arc<Rooms>, user: i64) -> Client {
        let mut client = Client::connect(rooms);
        client.text(&format!(
            r#"{{"v":1,"id":1,"type":"join","token":"{user}"}}"#
        ));
        let joined = client.next_json().await;
        assert_eq!(joined["type"], "joined", "{joined}");
        client
    }

    async fn next(&mut self) -> Message {
        tokio::time::timeout_at(self.give_up, self.received.recv())
            .await
            .expect("the session ended or closed within 10 minutes")
            .expect("the session sends")
    }

    /// The next text message, skipping pings.
    async fn next_json(&mut self) -> serde_json::Value {
        loop {
            match self.next().await {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("JSON");
                }
                Message::Ping(_) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next message of type `kind`, skipping the room's others; an error fails.
    async fn next_of_type(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let json = self.next_json().await;
            assert_ne!(json["type"], "error", "{json}");
            if json["type"] == kind {
                return json;
            }
        }
    }

    /// Reads until the session closes; returns the close frame and the error codes seen.
    async fn until_close(&mut self) -> (u16, String, Vec<String>) {
        let mut codes = Vec::new();
        loop {
            match self.next().await {
                Message::Close(Some(frame)) => {
                    return (frame.code, frame.reason.to_string(), codes);
                }
                Message::Text(text) => {
                    let json: serde_json::Value =
                        serde_json::from_str(text.as_str()).expect("JSON");
                    if json["type"] == "error" {
                        codes.push(json["code"].as_str().unwrap_or("").to_string());
                    }
                }
                Message::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn rooms(config: SignalingConfig) -> Arc<Rooms> {
    let (events, _) = mpsc::unbounded_channel();
    Arc::new(Rooms::new(config, events))
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_does_not_join_in_time_is_closed() {
    let config = SignalingConfig::default();
    let deadline = config.join_timeout;
    let rooms = rooms(config);
    let started = Instant::now();
    let mut client = Client::connect(&rooms);
    let (code, reason, errors) = client.until_close().await;
    assert_eq!((code, reason.as_str()), (CLOSE_POLICY, "join timeout"));
    assert_eq!(errors, ["join_timeout"]);
    assert_eq!(
        started.elapsed(),
        deadline,
        "closed at the deadline, not before"
    );
    client.session.await.expect("the session ends");
}

#[tokio::test(start_paused = true)]
async fn pings_before_the_join_do_not_extend_the_deadline_and_a_join_in_time_works() {
    let config = SignalingConfig::default();
    let deadline = config.join_timeout;
    let rooms = rooms(config);
    // Joins one second before the deadline.
    let mut late = Client::connect(&rooms);
    tokio::time::sleep(deadline - Duration::from_secs(1)).await;
    late.text(r#"{"v":1,"id":1,"type":"join","token":"7"}"#);
    assert_eq!(late.next_json().await["type"], "joined");
    // Only pongs before the deadline: still closed at it.
    let mut idle = Client::connect(&rooms);
    let started = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(deadline / 4).await;
        let _ = idle.send.send(Ok(Message::Pong(Default::default())));
    }
    let (code, _, errors) = idle.until_close().await;
    assert_eq!((code, errors.len()), (CLOSE_POLICY, 1));
    assert_eq!(started.elapsed(), deadline);
}

#[tokio::test(start_paused = true)]
async fn the_first_message_must_be_a_valid_join() {
    let rooms = rooms(SignalingConfig::default());
    let mut chatty = Client::connect(&rooms);
    chatty.text(r#"{"v":1,"id":4,"type":"raise_hand"}"#);
    let (code, reason, errors) = chatty.until_close().await;
    assert_eq!((code, reason.as_str()), (CLOSE_POLICY, "join first"));
    assert_eq!(errors, ["not_joined"]);

    let mut forger = Client::connect(&rooms);
    forger.text(r#"{"v":1,"id":1,"type":"join","token":"forged"}"#);
    let (code, reason, errors) = forger.until_close().await;
    assert_eq!((code, reason.as_str()), (CLOSE_POLICY, "invalid token"));
    assert_eq!(errors, ["invalid_token"]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_pinged_then_closed_as_idle() {
    let config = SignalingConfig::default();
    let (interval, idle) = (config.heartbeat_interval, config.idle_timeout);
    let rooms = rooms(config);
    let mut client = Client::join(&rooms, 1).await;
    let joined_at = Instant::now();
    let mut pings = Vec::new();
    let closed = loop {
        match client.next().await {
            Message::Ping(_) => pings.push(joined_at.elapsed()),
            Message::Close(Some(frame)) => break frame,
            _ => {}
        }
    };
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (CLOSE_POLICY, "idle")
    );
    let silent = joined_at.elapsed();
    assert!(
        silent > idle && silent <= idle + interval,
        "closed after {silent:?}"
    );
    assert_eq!(pings, [interval, interval * 2, interval * 3]);
    client.session.await.expect("the session ends");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_answers_pings_stays_until_it_goes() {
    let config = SignalingConfig::default();
    let idle = config.idle_timeout;
    let rooms = rooms(config);
    let mut client = Client::join(&rooms, 1).await;
    let joined_at = Instant::now();
    while joined_at.elapsed() < idle * 4 {
        match client.next().await {
            Message::Ping(_) => {
                let _ = client.send.send(Ok(Message::Pong(Default::default())));
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
    assert_eq!(rooms.open_rooms(), 1);
    let Client { send, session, .. } = client;
    drop(send);
    session.await.expect("the session ends with its stream");
}

#[tokio::test(start_paused = true)]
async fn a_flood_is_told_once_then_closed_and_a_client_within_the_rate_is_not() {
    let config = SignalingConfig {
        messages_per_second: 2,
        message_burst: 3,
        ..SignalingConfig::default()
    };
    let rooms = rooms(config);
    // Within the rate: a ping every second is always answered.
    let mut steady = Client::join(&rooms, 1).await;
    for _ in 0..10 {
        steady.text(r#"{"v":1,"type":"ping"}"#);
        steady.next_of_type("pong").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // A burst, then one over it (told), then a burst's worth more (closed).
    let mut flood = Client::join(&rooms, 2).await;
    for _ in 0..3 + 1 + 3 {
        flood.text(r#"{"v":1,"type":"ping"}"#);
    }
    let (code, reason, errors) = flood.until_close().await;
    assert_eq!((code, reason.as_str()), (CLOSE_POLICY, "rate limit"));
    assert_eq!(errors, ["rate_limited"], "told once");
    // Binary frames count against the rate too.
    let mut binary = Client::join(&rooms, 3).await;
    for _ in 0..3 + 1 + 3 {
        let _ = binary.send.send(Ok(Message::Binary(Default::default())));
    }
    let (code, _, errors) = binary.until_close().await;
    assert_eq!(code, CLOSE_POLICY);
    let told = [
        "invalid_message",
        "invalid_message",
        "invalid_message",
        "rate_limited",
    ];
    assert_eq!(errors, told);
    steady.text(r#"{"v":1,"type":"ping"}"#);
    steady.next_of_type("pong").await; // the others stay
}

/// Join tokens of an edge node: every room's home is another node, reached through a link
/// whose far end (the home's side) goes to the test.
struct Edge {
    homes: mpsc::UnboundedSender<(mpsc::Receiver<HomeFrame>, mpsc::Sender<HomeFrame>)>,
}

impl TokenVerifier for Edge {
    fn verify(&self, token: &str) -> Result<JoinClaims, InvalidToken> {
        Tokens.verify(token)
    }

    fn admit<'a>(&'a self, _: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>> {
        Box::pin(async { Err(AdmitError::ElsewhereNode) })
    }

    fn home_link<'a>(&'a self, _: &'a JoinClaims) -> MediaFuture<'a, Option<HomeLink>> {
        let (to_home, at_home) = mpsc::channel(4);
        let (from_home_tx, from_home) = mpsc::channel(4);
        let _ = self.homes.send((at_home, from_home_tx));
        Box::pin(async move { Some(HomeLink::channels(to_home, from_home)) })
    }
}

/// A client of an edge session, and the home's side of its link.
async fn edge_client(
    rooms: &Arc<Rooms>,
) -> (Client, mpsc::Receiver<HomeFrame>, mpsc::Sender<HomeFrame>) {
    let (homes, mut linked) = mpsc::unbounded_channel();
    let mut client = Client::connect_to(rooms, Arc::new(Edge { homes }));
    let join = r#"{"v":1,"id":1,"type":"join","token":"7"}"#;
    client.text(join);
    let (mut at_home, to_client) = linked.recv().await.expect("a link is opened");
    assert_eq!(at_home.recv().await, Some(HomeFrame::Text(join.into())));
    client.give_up = Instant::now() + Duration::from_secs(600);
    (client, at_home, to_client)
}

#[tokio::test(start_paused = true)]
async fn an_edge_relays_a_participant_to_the_home_and_passes_the_homes_close_on() {
    let rooms = rooms(SignalingConfig::default());
    let (mut client, mut at_home, to_client) = edge_client(&rooms).await;
    // Both ways, verbatim.
    let joined = r#"{"v":1,"type":"joined","id":1}"#;
    to_client
        .send(HomeFrame::Text(joined.into()))
        .await
        .expect("the session reads");
    assert_eq!(client.next_json().await["type"], "joined");
    let chat = r#"{"v":1,"id":2,"type":"chat","text":"hi"}"#;
    client.text(chat);
    assert_eq!(at_home.recv().await, Some(HomeFrame::Text(chat.into())));
    // No room opened here: the room is the home's.
    assert_eq!(rooms.open_rooms(), 0);
    // The home closes the participant (removed by a teacher): the client hears the same.
    let removed = HomeFrame::Close {
        code: 4003,
        reason: "removed".into(),
    };
    to_client.send(removed).await.expect("the session reads");
    let (code, reason, _) = client.until_close().await;
    assert_eq!((code, reason.as_str()), (4003, "removed"));
    // And the link to the home is let go.
    assert_eq!(at_home.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn an_edge_passes_the_clients_close_code_to_the_home() {
    let rooms = rooms(SignalingConfig::default());
    let (client, mut at_home, _to_client) = edge_client(&rooms).await;
    let goodbye = axum::extract::ws::CloseFrame {
        code: 4100,
        reason: "tab closed".into(),
    };
    client
        .send
        .send(Ok(Message::Close(Some(goodbye))))
        .expect("the session reads");
    let closed = HomeFrame::Close {
        code: 4100,
        reason: "tab closed".into(),
    };
    assert_eq!(at_home.recv().await, Some(closed));
    assert_eq!(at_home.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_home_gone_or_an_edge_draining_sends_the_client_to_join_again() {
    let rooms = rooms(SignalingConfig::default());
    // The home node went away: its link ended without a close.
    let (mut client, _at_home, to_client) = edge_client(&rooms).await;
    drop(to_client);
    let (code, _, _) = client.until_close().await;
    assert_eq!(code, CloseReason::Draining.code());

    // This node drains: its relayed clients are sent to join again at once, not at the next
    // heartbeat.
    let (mut client, mut at_home, _to_client) = edge_client(&rooms).await;
    rooms.drain().await;
    let started = Instant::now();
    let (code, _, _) = client.until_close().await;
    assert_eq!(code, CloseReason::Draining.code());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(at_home.recv().await, None);
}

/// Join tokens for the breakout tests: `t<user>` is a teacher, `<user>` a student.
struct WithTeachers;

impl TokenVerifier for WithTeachers {
    fn verify(&self, token: &str) -> Result<JoinClaims, InvalidToken> {
        let (role, user) = match token.strip_prefix('t') {
            Some(user) => (ParticipantRole::Teacher, user),
            None => (ParticipantRole::Student, token),
        };
        let user: i64 = user.parse().map_err(|_| InvalidToken::Malformed)?;
        Ok(crate::room::test_claims(
            user,
            role,
            LessonId(1),
            CourseId(1),
            token,
        ))
    }

    fn admit<'a>(&'a self, _: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>> {
        Box::pin(async { Ok(()) })
    }
}

impl Client {
    async fn join_with_teachers(rooms: &Arc<Rooms>, token: &str) -> Client {
        let mut client = Client::connect_to(rooms, Arc::new(WithTeachers));
        client.text(&format!(
            r#"{{"v":1,"id":1,"type":"join","token":"{token}"}}"#
        ));
        client.next_of_type("joined").await;
        client
    }

    /// The text messages up to and including the first that `last` accepts.
    async fn json_until(
        &mut self,
        last: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let json = self.next_json().await;
            let done = last(&json);
            seen.push(json);
            if done {
                return seen;
            }
        }
    }
}

fn chat_text(json: &serde_json::Value) -> Option<&str> {
    (json["type"] == "chat").then(|| json["message"]["text"].as_str().unwrap_or(""))
}

/// A session moved back to the main room hears nothing more of the breakout room it left.
/// That room goes on sending until it hears of the departure: here a chat said there as the
/// teacher closes the rooms (the breakout room handles the chat after the main room moved the
/// session). In a browser it was the departure of a room mate, whose breakout-room id was the
/// teacher's id in the main room: the page dropped the teacher, and never showed their video.
/// The tokio runtime of this test runs one task at a time, in the order they were woken, so
/// the interleaving is the same every run.
#[tokio::test(start_paused = true)]
async fn a_session_back_in_the_main_room_hears_nothing_more_of_the_breakout_room() {
    let rooms = rooms(SignalingConfig::default());
    let mut teacher = Client::join_with_teachers(&rooms, "t1").await;
    let mut sam = Client::join_with_teachers(&rooms, "2").await;
    let mut kim = Client::join_with_teachers(&rooms, "3").await;
    teacher.text(r#"{"v":1,"id":2,"type":"open_breakouts","rooms":1,"mode":"random"}"#);
    teacher.next_of_type("ok").await;
    for student in [&mut sam, &mut kim] {
        let moved = student.next_of_type("moved").await;
        assert_eq!(moved["to"]["index"], 0, "{moved}");
        student.next_of_type("joined").await;
    }

    // Kim speaks in the breakout room as the teacher closes the rooms.
    teacher.text(r#"{"v":1,"id":3,"type":"close_breakouts"}"#);
    kim.text(r#"{"v":1,"id":2,"type":"chat","text":"in room 1"}"#);
    let before_move = sam
        .json_until(|m| m["type"] == "moved" && m["to"].is_null())
        .await;
    let back = sam.json_until(|m| m["type"] == "joined").await;
    assert!(
        back.iter().all(|m| m["type"] != "error"),
        "the move back: {back:?}"
    );
    // The teacher's chat in the main room marks the end of what Sam may have heard since.
    teacher.text(r#"{"v":1,"id":4,"type":"chat","text":"welcome back"}"#);
    let since = sam
        .json_until(|m| chat_text(m) == Some("welcome back"))
        .await;
    let stale: Vec<&serde_json::Value> = since
        .iter()
        .chain(&back)
        .filter(|m| chat_text(m) == Some("in room 1") || m["type"] == "participant_left")
        .collect();
    assert!(
        stale.is_empty(),
        "nothing of the breakout room after the move back: {stale:?} (before it: {before_move:?})"
    );
}
