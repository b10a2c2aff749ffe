//! WHIP and WHEP end to end, with the load tester's str0m peer as the encoder and the player
//! (the browser test drives the npm clients): a WHIP publisher enters the lesson as its
//! encoder, a student receives it, a second publisher on the key is refused and the teacher
//! reads why; a WHEP player with a join token receives the main view; DELETE ends each. Bad
//! requests get clear 4xx answers and change nothing.

use std::net::{IpAddr, Ipv4Addr};

use classroom_loadtest::link::Transport;
use classroom_loadtest::peer::{Peer, Sending};
use classroom_loadtest::receiver::StreamKind;
use classroom_protocol::signal::{EncoderState, MediaKind as SignalKind, ServerMessage};
use classroom_tests::media::{clips, wait_until};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};

use super::*;

/// A str0m peer on 127.0.0.1 and its offer: `sending`, then `receive` recvonly pairs.
async fn peer(sending: Sending, receive: usize) -> (Peer, String) {
    Peer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Transport::Udp,
        clips(),
        sending,
        receive,
        None,
    )
    .await
    .expect("a peer starts")
}

/// A WHIP or WHEP request: `method` on `path`, with a bearer and an SDP body when given.
async fn send(
    class: &Class,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", class.server.base))
        .header(CONTENT_TYPE, content_type)
        .body(body);
    if let Some(bearer) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {bearer}"));
    }
    request.send().await.expect("the server answers")
}

async fn post_offer(class: &Class, path: &str, bearer: &str, offer: &str) -> reqwest::Response {
    let body = offer.as_bytes().to_vec();
    send(
        class,
        reqwest::Method::POST,
        path,
        Some(bearer),
        "application/sdp",
        body,
    )
    .await
}

/// The error code of an error answer.
async fn code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, code)
}

/// A `201 Created` answer: the SDP answer and the session's path.
async fn created(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/sdp"[..])
    );
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..]),
        "browser publishers on other origins may read the answer"
    );
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned();
    (response.text().await.expect("an answer"), location)
}

/// A WHIP encoder publishing audio and video on `key`, its answer taken (not yet connected).
struct Encoder {
    peer: Peer,
    offer: String,
    answer: String,
    /// The session's path, `/whip/sessions/…`.
    session: String,
}

async fn encode(class: &Class, key: &str) -> Encoder {
    let (peer, offer) = peer(Sending::AUDIO_VIDEO, 0).await;
    let (answer, session) = created(post_offer(class, "/whip", key, &offer).await).await;
    assert!(session.starts_with("/whip/sessions/"), "{session}");
    peer.accept_answer(answer.clone())
        .await
        .expect("the answer fits");
    Encoder {
        peer,
        offer,
        answer,
        session,
    }
}

/// A WHEP player with a student's join token, connected.
struct Player {
    peer: Peer,
    /// Its join token: the bearer of its session.
    join: String,
    answer: String,
    /// The session's path, `/whep/sessions/…`.
    session: String,
    /// When it posted its offer.
    posted: std::time::Instant,
}

async fn play(class: &Class) -> Player {
    let (peer, offer) = peer(Sending::NOTHING, 1).await;
    let join = token(&class.school.student, class.lesson).await;
    let posted = std::time::Instant::now();
    let (answer, session) = created(post_offer(class, "/whep", &join, &offer).await).await;
    assert!(session.starts_with("/whep/sessions/"), "{session}");
    peer.accept_answer(answer.clone())
        .await
        .expect("the answer fits");
    assert!(
        wait_until(WAIT, || peer.is_connected()).await,
        "the player connects"
    );
    Player {
        peer,
        join,
        answer,
        session,
        posted,
    }
}

impl Player {
    /// Frames of `kind` received so far.
    fn frames(&self, kind: StreamKind) -> u64 {
        self.peer.with_stats(|s| {
            (s.streams.values())
                .filter(|st| st.kind == kind)
                .map(|st| st.frames)
                .sum::<u64>()
        })
    }

    /// Waits for more than ten frames of video and of audio; `what` says whose.
    async fn receives(&self, what: &str) {
        assert!(
            wait_until(WAIT, || self.frames(StreamKind::Video) > 10
                && self.frames(StreamKind::Audio) > 10)
            .await,
            "the player receives {what}: video {}, audio {}",
            self.frames(StreamKind::Video),
            self.frames(StreamKind::Audio)
        );
    }

    /// `method` on the player's session, with its bearer and no body.
    async fn request(
        &self,
        class: &Class,
        method: reqwest::Method,
        content_type: &str,
    ) -> reqwest::Response {
        let bearer = Some(self.join.as_str());
        send(
            class,
            method,
            &self.session,
            bearer,
            content_type,
            Vec::new(),
        )
        .await
    }

    /// From the POST to the first keyframe.
    fn first_keyframe(&self) -> Option<std::time::Duration> {
        self.peer.with_stats(|s| {
            (s.streams.values())
                .filter_map(|st| st.first_keyframe)
                .min()
                .map(|at| at.saturating_duration_since(self.posted))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_encoder_reaches_the_class_and_a_whep_player_watches_the_main_view() {
    let class = Class::new(|_| {}).await;
    let mut teacher = class.teacher().await;
    let (ws, _) = Ws::join(
        &class.server.base,
        &token(&class.school.student, class.lesson).await,
    )
    .await;
    let mut student = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || student.is_connected()).await);

    // The encoder: audio and one layer of video, over WHIP with the stream key.
    let Encoder {
        peer: encoder,
        offer,
        session,
        ..
    } = encode(&class, &class.key).await;
    assert!(wait_until(WAIT, || encoder.is_connected()).await);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    assert!(
        student
            .pump_until(WAIT, |p| frames_from_encoder(p, SignalKind::Video) > 10
                && frames_from_encoder(p, SignalKind::Audio) > 10)
            .await,
        "the student receives the WHIP encoder's video and audio as the encoder's"
    );
    let encoder_id = encoder_participant(&student).expect("the encoder is a participant");
    assert_eq!(student.mids_of(encoder_id).len(), 2);

    // Trickle: candidates are taken (and not needed); an ICE restart is refused.
    let ufrag = offer_ufrag(&offer);
    let fragment = |ufrag: &str| {
        format!(
            "a=ice-ufrag:{ufrag}\r\na=ice-pwd:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
        )
        .into_bytes()
    };
    let trickle = "application/trickle-ice-sdpfrag";
    let patch = reqwest::Method::PATCH;
    let taken = send(
        &class,
        patch.clone(),
        &session,
        Some(&class.key),
        trickle,
        fragment(&ufrag),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::NO_CONTENT);
    let restart = send(
        &class,
        patch,
        &session,
        Some(&class.key),
        trickle,
        fragment("other"),
    )
    .await;
    assert_eq!(
        code(restart).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "ice_restart_unsupported".into()
        )
    );
    assert!(encoder.is_connected(), "the encoder is untouched");

    // A second encoder on the key, over WHIP or RTMP: refused, and the teacher reads why.
    let (_second, offer) = peer(Sending::AUDIO_VIDEO, 0).await;
    let refused = post_offer(&class, "/whip", &class.key, &offer).await;
    assert_eq!(
        code(refused).await,
        (StatusCode::CONFLICT, "encoder_publishing".into())
    );
    let (state, reason) = encoder_news(&mut teacher).await;
    assert_eq!(state, EncoderState::Refused);
    assert!(reason.is_some_and(|r| r.contains("already streaming")));
    let status = push(&clip(0, 1), &class.url(&class.key), false)
        .wait()
        .await
        .expect("ffmpeg ran");
    assert!(!status.success(), "an RTMP encoder is refused too");
    assert_eq!(encoder_news(&mut teacher).await.0, EncoderState::Refused);

    // A WHEP player with a join token: the encoder's video and audio, as audience.
    let player = play(&class).await;
    player.receives("the main view").await;
    eprintln!(
        "WHEP: POST to the player's first keyframe: {:?}",
        player.first_keyframe()
    );
    let metrics = class.metrics().await;
    assert_eq!(metrics.value("classroom_whip_encoders"), Some(1.0));
    assert_eq!(metrics.value("classroom_whep_players"), Some(1.0));
    student.pump(std::time::Duration::from_millis(300)).await;
    let joined = student
        .messages
        .iter()
        .filter(|m| matches!(m, ServerMessage::ParticipantJoined { .. }))
        .count();
    assert_eq!(
        joined, 1,
        "only the encoder joined: a player is no participant"
    );

    // DELETE needs the session's bearer; then the player, then the encoder, stop.
    let delete = |path: &str, bearer: Option<String>| {
        let path = path.to_owned();
        let class = &class;
        async move {
            send(
                class,
                reqwest::Method::DELETE,
                &path,
                bearer.as_deref(),
                "text/plain",
                Vec::new(),
            )
            .await
            .status()
        }
    };
    assert_eq!(
        delete(&player.session, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        delete(&player.session, Some(player.join.clone())).await,
        StatusCode::OK
    );
    assert_eq!(
        delete(&session, Some("3-wrong".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        delete(&session, Some(class.key.clone())).await,
        StatusCode::OK
    );
    assert_eq!(
        encoder_news(&mut teacher).await,
        (EncoderState::Stopped, None)
    );
    assert!(
        student.pump_until(WAIT, |p| p.ended.len() == 2).await,
        "the encoder's tracks end"
    );
    assert_eq!(
        delete(&session, Some(class.key.clone())).await,
        StatusCode::NOT_FOUND
    );
    let metrics = class.metrics().await;
    assert_eq!(metrics.value("classroom_whip_encoders"), Some(0.0));
    assert_eq!(metrics.value("classroom_whep_players"), Some(0.0));

    // The key is free again: RTMP may stream.
    let mut ffmpeg = push(&clip(0, 3), &class.url(&class.key), true);
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));
    ffmpeg.kill().await.expect("ffmpeg stops");
    student.peer.stop();
    encoder.stop();
    player.peer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whip_and_whep_requests_get_clear_refusals_and_change_nothing() {
    let class = Class::new(|_| {}).await;
    let (_encoder, offer) = peer(Sending::AUDIO_VIDEO, 0).await;
    let sdp = "application/sdp";
    let post = reqwest::Method::POST;

    // No key, a wrong key, a key of no lesson: 401 with a Bearer challenge.
    let response = send(
        &class,
        post.clone(),
        "/whip",
        None,
        sdp,
        offer.clone().into(),
    )
    .await;
    assert_eq!(
        response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_eq!(code(response).await.0, StatusCode::UNAUTHORIZED);
    let wrong = format!("{}-{}", class.lesson, "0".repeat(48));
    for key in [wrong.as_str(), "nonsense", "999999-abc"] {
        let response = post_offer(&class, "/whip", key, &offer).await;
        assert_eq!(code(response).await.0, StatusCode::UNAUTHORIZED, "{key}");
    }
    // Not SDP; not declared as SDP; audio only; not UTF-8; too large.
    let cases: [(&str, Vec<u8>, StatusCode, &str); 5] = [
        (
            sdp,
            b"hello".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
        ),
        (
            "application/json",
            offer.clone().into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            sdp,
            audio_only(&offer).into(),
            StatusCode::BAD_REQUEST,
            "no_video",
        ),
        (sdp, vec![0xff; 64], StatusCode::BAD_REQUEST, "invalid_sdp"),
        (
            sdp,
            vec![b'a'; 200 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    for (content_type, body, status, expected) in cases {
        let response = send(
            &class,
            post.clone(),
            "/whip",
            Some(&class.key),
            content_type,
            body,
        )
        .await;
        let (got, got_code) = code(response).await;
        assert_eq!(got, status, "{content_type} {expected}");
        if !expected.is_empty() {
            assert_eq!(got_code, expected);
        }
    }
    // An offer the SFU cannot answer (SDP, video, but no ICE credentials or codecs).
    let broken = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n";
    let response = post_offer(&class, "/whip", &class.key, broken).await;
    assert_eq!(code(response).await.0, StatusCode::BAD_REQUEST);
    // Sessions that do not exist; a trickle PATCH without a session.
    let patch = send(
        &class,
        reqwest::Method::PATCH,
        "/whip/sessions/nope",
        Some(&class.key),
        "application/trickle-ice-sdpfrag",
        b"a=ice-ufrag:x\r\n".to_vec(),
    )
    .await;
    assert_eq!(patch.status(), StatusCode::NOT_FOUND);

    // WHEP: no token, a garbage token, an offer that receives no video.
    let (_player, play) = peer(Sending::NOTHING, 1).await;
    let response = send(
        &class,
        post.clone(),
        "/whep",
        None,
        sdp,
        play.clone().into(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = post_offer(&class, "/whep", "not.a.jwt", &play).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let join = token(&class.school.student, class.lesson).await;
    let response = post_offer(&class, "/whep", &join, &offer).await;
    assert_eq!(
        code(response).await,
        (StatusCode::BAD_REQUEST, "no_video".into())
    );
    // The stream key is no join token, and a join token no stream key.
    let response = post_offer(&class, "/whep", &class.key, &play).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = post_offer(&class, "/whip", &join, &offer).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // CORS preflight for browser publishers.
    let options = send(
        &class,
        reqwest::Method::OPTIONS,
        "/whip",
        None,
        "text/plain",
        Vec::new(),
    )
    .await;
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        options.headers().get("accept-post").map(|v| v.as_bytes()),
        Some(&b"application/sdp"[..])
    );

    // Nothing changed: the lesson is still scheduled (an encoder would have made it live),
    // and a teacher who joins hears of no encoder.
    assert_eq!(class.lesson_state().await, "scheduled");
    let mut teacher = class.teacher().await;
    let quiet_until = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        let left = quiet_until.saturating_duration_since(tokio::time::Instant::now());
        match teacher.recv_within(left).await {
            Ok(Some(ServerMessage::Encoder { state, .. })) => {
                panic!("the teacher heard of an encoder: {state:?}")
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(()) => break,
        }
    }
}

/// `offer` without its video m-section (and without video in its BUNDLE group).
fn audio_only(offer: &str) -> String {
    let mut out = String::new();
    let mut in_video = false;
    for line in offer.split_inclusive("\r\n") {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        }
        if !in_video {
            out.push_str(line);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_stops_a_whip_encoder_and_an_ended_lesson_closes_its_players() {
    let class = Class::new(|_| {}).await;
    let mut teacher = class.teacher().await;
    let encoder = encode(&class, &class.key).await.peer;
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));

    // A leaked key is rotated: the WHIP encoder is cut off, the old key opens nothing.
    let rotated = class
        .school
        .teacher
        .post_empty(&format!("/api/v1/lessons/{}/stream-key", class.lesson))
        .await;
    let key = rotated.expect(200)["stream_key"]
        .as_str()
        .expect("a key")
        .to_owned();
    assert_eq!(
        encoder_news(&mut teacher).await,
        (EncoderState::Stopped, None)
    );
    let (again, offer) = peer(Sending::AUDIO_VIDEO, 0).await;
    let response = post_offer(&class, "/whip", &class.key, &offer).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (answer, _) = created(post_offer(&class, "/whip", &key, &offer).await).await;
    again.accept_answer(answer).await.expect("the answer fits");
    assert_eq!(encoder_news(&mut teacher).await, (EncoderState::Live, None));

    // A player watches; the teacher ends the lesson: the player's session goes.
    let player = play(&class).await;
    teacher.ok(ClientMessage::EndLesson).await;
    let mut gone = false;
    for _ in 0..100 {
        let response = player
            .request(
                &class,
                reqwest::Method::PATCH,
                "application/trickle-ice-sdpfrag",
            )
            .await;
        if response.status() == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the ended lesson's player session is closed");
    encoder.stop();
    again.stop();
    player.peer.stop();
}

/// The ICE username fragment of an offer.
fn offer_ufrag(offer: &str) -> String {
    offer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("the offer has an ice-ufrag")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_on_another_worker_than_the_encoder_watches_across_the_relay() {
    let class = Class::new(|config| {
        config.media.workers = 2;
        config.media.worker_peer_limit = 2;
    })
    .await;
    // A student and the WHIP encoder fill the lesson's home worker; the player goes to the
    // other one.
    let (ws, _) = Ws::join(
        &class.server.base,
        &token(&class.school.student, class.lesson).await,
    )
    .await;
    let mut student = Participant::connect(ws, Sending::NOTHING, 1).await;
    assert!(wait_until(WAIT, || student.is_connected()).await);
    let encoder = encode(&class, &class.key).await;
    assert!(
        student
            .pump_until(WAIT, |p| frames_from_encoder(p, SignalKind::Video) > 10)
            .await,
        "the student receives the encoder"
    );

    let player = play(&class).await;
    let workers = class.server.media_addrs();
    let worker_of = |answer: &str| {
        workers
            .iter()
            .position(|w| answer.contains(&format!(" {} typ host", w.port())))
            .expect("a worker's port in the answer")
    };
    assert_eq!(worker_of(&encoder.answer), worker_of(&student.answer));
    assert_ne!(
        worker_of(&player.answer),
        worker_of(&encoder.answer),
        "the player is on the other worker"
    );
    player
        .receives("the encoder's video and audio over the relay")
        .await;
    eprintln!(
        "WHEP across workers: POST to the player's first keyframe: {:?}",
        player.first_keyframe()
    );
    let metrics = class.metrics().await;
    assert_eq!(metrics.value("classroom_whep_players"), Some(1.0));
    let relayed = metrics.expect("classroom_media_relay_total{what=\"packet_sent\"}");
    assert!(relayed > 20.0, "the media crossed the relay: {relayed}");

    let ended = player
        .request(&class, reqwest::Method::DELETE, "text/plain")
        .await;
    assert_eq!(ended.status(), StatusCode::OK);
    student.peer.stop();
    encoder.peer.stop();
    player.peer.stop();
}
