//! Slides through the real server: a teacher shows a prepared document over signaling and
//! turns its pages; thirty students on their own WebSockets each get every page, and the time
//! from the turn to each student's `slide` is measured (printed, and held to 100 ms at the
//! 95th percentile on loopback). A student joining afterwards lands on the last page.

use std::time::{Duration, Instant};

use classroom_protocol::signal::{ClientMessage, ServerMessage};
use classroom_protocol::{DocumentId, UserRole};
use classroom_tests::school::join_token;
use classroom_tests::ws::Ws;
use tokio::sync::mpsc;

use super::*;

const STUDENTS: usize = 30;
const PAGES: u32 = 10;

// SQLite only: the database plays no part in a page turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_student_follows_the_teachers_pages() {
    let Some(server) = TestServer::start(classroom_tests::Backend::Sqlite, |_| {}).await else {
        return;
    };
    let school = School::new(&server).await;
    let course = school.course_id;
    let document = id(&upload(
        &school.teacher,
        course,
        "deck.pdf",
        PDF,
        pdf_of(PAGES as usize),
    )
    .await);
    let ready = settled(&school.teacher, document, Duration::from_secs(60)).await;
    assert_eq!(ready["pages"], PAGES);
    let lesson = school.lesson("Slides").await;

    let (mut teacher, _) = Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
    let (heard, mut hearing) = mpsc::unbounded_channel();
    let mut students = Vec::new();
    for i in 0..STUDENTS {
        let (client, user) = server
            .user(
                UserRole::Student,
                &format!("s{i}@school.edu"),
                &format!("Student {i}"),
            )
            .await;
        school
            .teacher
            .post(
                &format!("/api/v1/courses/{course}/enrollments"),
                json!({"user_id": id(&user)}),
            )
            .await
            .expect(201);
        let (mut ws, _) = Ws::join(&server.base, &join_token(&client, lesson).await).await;
        let heard = heard.clone();
        students.push(tokio::spawn(async move {
            while let Some(message) = ws.recv().await {
                if let ServerMessage::Slide { slide: Some(slide) } = message {
                    let _ = heard.send((i, slide.page, Instant::now()));
                }
            }
        }));
    }

    let mut latencies = Vec::new();
    for page in 1..=PAGES {
        let message = if page == 1 {
            ClientMessage::OpenDocument {
                document: DocumentId(document),
                pages: PAGES,
                page,
            }
        } else {
            ClientMessage::TurnPage { page }
        };
        let turned = Instant::now();
        teacher.ok(message).await;
        let mut reached = 0;
        while reached < STUDENTS {
            let (student, at, when) = tokio::time::timeout(Duration::from_secs(5), hearing.recv())
                .await
                .expect("every student hears the turn")
                .expect("students listening");
            assert_eq!(at, page, "student {student} got another page");
            latencies.push(when.duration_since(turned));
            reached += 1;
        }
        // A pause a teacher would make, well inside the signaling rate limit.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "page turn to {STUDENTS} students, {} deliveries: p50 {:?}, p95 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.95),
        p(1.0)
    );
    assert!(p(0.95) <= Duration::from_millis(100), "p95 {:?}", p(0.95));

    let (late_client, late_user) = server
        .user(UserRole::Student, "late@school.edu", "Late Student")
        .await;
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{course}/enrollments"),
            json!({"user_id": id(&late_user)}),
        )
        .await
        .expect(201);
    let (_late, joined) = Ws::join(&server.base, &join_token(&late_client, lesson).await).await;
    let ServerMessage::Joined { slide, .. } = joined else {
        panic!("not a snapshot: {joined:?}")
    };
    assert_eq!(
        slide.map(|s| (s.document.0, s.page)),
        Some((document, PAGES))
    );
    for student in students {
        student.abort();
    }
    server.stop().await;
}

/// The room shows a document with the pages it has, whatever the client claims, and only one
/// of the lesson's course that is ready.
#[tokio::test]
async fn a_document_is_shown_with_its_real_pages_and_only_from_the_course() {
    let Some(server) = TestServer::start(classroom_tests::Backend::Sqlite, |_| {}).await else {
        return;
    };
    let school = School::new(&server).await;
    let course = school.course_id;
    let document = id(&upload(&school.teacher, course, "three.pdf", PDF, pdf_of(3)).await);
    settled(&school.teacher, document, Duration::from_secs(60)).await;
    let lesson = school.lesson("Claims").await;
    let (mut teacher, _) = Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;

    // A client claiming 500 pages gets the document's 3; page 4 is then no page of it.
    let open = teacher
        .send(ClientMessage::OpenDocument {
            document: DocumentId(document),
            pages: 500,
            page: 1,
        })
        .await;
    assert_eq!(teacher.reply(open).await, ServerMessage::Ok { id: open });
    let shown = teacher
        .recv_where(|m| matches!(m, ServerMessage::Slide { slide: Some(_) }))
        .await;
    let ServerMessage::Slide { slide: Some(slide) } = shown else {
        unreachable!()
    };
    assert_eq!(slide.pages, 3);
    let turn = teacher.send(ClientMessage::TurnPage { page: 4 }).await;
    assert!(
        matches!(teacher.reply(turn).await, ServerMessage::Error { code, .. } if code == classroom_protocol::ErrorCode::InvalidMessage)
    );
    // A document that does not exist (or is another course's) is refused before the room.
    let unknown = teacher
        .send(ClientMessage::OpenDocument {
            document: DocumentId(document + 1000),
            pages: 3,
            page: 1,
        })
        .await;
    let refused = teacher.reply(unknown).await;
    assert!(
        matches!(&refused, ServerMessage::Error { code, message, .. }
            if *code == classroom_protocol::ErrorCode::InvalidMessage && message.contains("no document of this course")),
        "{refused:?}"
    );
    server.stop().await;
}
