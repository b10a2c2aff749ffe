//! A flood of binary frames on a signaling connection goes through its rate limit like text:
//! it used to skip the limit and earn one error reply per frame (5,000 replies).

use classroom_protocol::signal::ServerMessage;
use classroom_tests::school::{School, join_token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};

#[tokio::test]
async fn a_flood_of_binary_frames_is_rate_limited_and_closed() {
    let server = TestServer::start(Backend::Sqlite, |c| {
        c.signaling.messages_per_second = 5;
        c.signaling.message_burst = 5;
    })
    .await
    .expect("a server");
    let school = School::new(&server).await;
    let lesson = school.lesson("Flooded").await;
    let (mut teacher, _) = Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
    let (mut sam, _) = Ws::join(&server.base, &join_token(&school.student, lesson).await).await;

    for _ in 0..5000 {
        if !sam.send_binary(vec![0xde, 0xad, 0xbe, 0xef]).await {
            break; // closed by the server
        }
    }
    let (answers, close) = sam.close_frame().await;
    let code = |m: &ServerMessage| match m {
        ServerMessage::Error { code, .. } => code.as_str().to_string(),
        other => format!("{other:?}"),
    };
    let codes: Vec<String> = answers.iter().map(code).collect();
    let invalid = codes.iter().filter(|c| *c == "invalid_message").count();
    let limited = codes.iter().filter(|c| *c == "rate_limited").count();
    assert!(
        invalid <= 5,
        "at most the burst of frames is answered: {codes:?}"
    );
    assert_eq!(limited, 1, "told once that it is too fast: {codes:?}");
    assert_eq!(
        close,
        Some((1008, "rate limit".to_string())),
        "then closed for its rate"
    );
    let counted = server
        .metric("classroom_signaling_messages_total{outcome=\"rate_limited\"}")
        .await;
    assert!(counted.is_some_and(|n| n >= 6.0), "counted: {counted:?}");

    // The room goes on for everyone else.
    teacher
        .ok(classroom_protocol::signal::ClientMessage::Ping)
        .await;
    server.stop().await;
}
