//! The teacher's tools under load: a teacher presents a document (a PDF the run uploads and the
//! server converts), turns its pages and draws on them while N students follow over signaling
//! (what they receive are messages, so no media is set up); how long each stroke and each page
//! turn takes from the teacher's send to each student. A server that cannot prepare the
//! document (no LibreOffice or poppler) gets the blank board's pages instead, and the report
//! says so.
//!
//! Strokes and page turns reach a student in the order the teacher sent them (one drawer,
//! one ordered connection each), so the i-th `stroke` a student gets is the teacher's i-th,
//! and likewise for the `slide` messages of page turns (the blank board's: `board`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use classroom_protocol::DocumentId;
use classroom_protocol::board::{Colour, Point, Tool};
use classroom_protocol::signal::{ClientMessage, ServerMessage};
use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::watch;

use crate::participant::Server;
use crate::report::Percentiles;
use crate::scenario::{RunConfig, RunError, set_up};
use crate::signaling::Signaling;

/// A stroke every this long (Draw then DrawEnd: two messages, well under the per-connection
/// message rate), and a page turn every `TURN_EVERY` strokes.
const STROKE_EVERY: Duration = Duration::from_millis(250);
const TURN_EVERY: usize = 8;
/// Pages of the blank board the teacher turns through (the room has 20 by default).
const PAGES: u32 = 5;
/// How long students keep listening after the teacher's last send.
const SETTLE: Duration = Duration::from_secs(2);
const JOIN_WAIT: Duration = Duration::from_secs(20);
/// How long the server may take to convert the uploaded PDF.
const DOCUMENT_WAIT: Duration = Duration::from_secs(60);

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BoardReport {
    pub students: usize,
    /// Students who joined and listened to the end.
    pub students_listening: usize,
    /// Where the pages turned were: `document` (the uploaded PDF) or `blank board`.
    pub pages_of: &'static str,
    pub strokes_sent: usize,
    pub page_turns_sent: usize,
    /// Milliseconds from the teacher's send to a student's receipt, over all students.
    pub stroke_ms: Percentiles,
    pub stroke_max_ms: Option<f64>,
    pub page_turn_ms: Percentiles,
    pub page_turn_max_ms: Option<f64>,
    /// Strokes and page turns some listening student never got.
    pub strokes_missed: usize,
    pub page_turns_missed: usize,
}

impl BoardReport {
    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        format!(
            "board: {} students ({} listening), {} strokes, {} page turns of the {}\n\
             stroke    → student: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms; missed {}\n\
             page turn → student: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms; missed {}\n",
            self.students,
            self.students_listening,
            self.strokes_sent,
            self.page_turns_sent,
            self.pages_of,
            ms(self.stroke_ms.p50),
            ms(self.stroke_ms.p95),
            ms(self.stroke_ms.p99),
            ms(self.stroke_max_ms),
            self.strokes_missed,
            ms(self.page_turn_ms.p50),
            ms(self.page_turn_ms.p95),
            ms(self.page_turn_ms.p99),
            ms(self.page_turn_max_ms),
            self.page_turns_missed,
        )
    }
}

/// When a student got each stroke and each page turn, in order.
#[derive(Default)]
struct Heard {
    strokes: Vec<Instant>,
    turns: Vec<Instant>,
}

/// Runs the board scenario for `config.duration` (or until `stop`).
pub async fn run(
    config: RunConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<BoardReport, RunError> {
    let api = crate::api::Api::new(&config.server);
    let lesson = set_up(&api, &config).await?;
    let document = match (&lesson.teacher, lesson.course) {
        (Server::Classroom { api, .. }, Some(course)) => prepared_document(api, course).await,
        _ => None,
    };
    let (done, finished) = watch::channel(false);
    let joined = Arc::new(AtomicUsize::new(0));
    let listeners: Vec<_> = lesson
        .students
        .into_iter()
        .map(|student| {
            let listening = listen(
                student,
                document.is_some(),
                joined.clone(),
                finished.clone(),
            );
            tokio::spawn(listening)
        })
        .collect();
    let mut teacher = connect(&lesson.teacher).await.map_err(RunError::Teacher)?;
    // Everyone in before the first turn (students still joining would miss it), or as many as
    // made it within the join wait.
    let waiting = Instant::now() + JOIN_WAIT;
    while joined.load(Ordering::Relaxed) < config.students && Instant::now() < waiting {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut turns = Vec::new();
    let mut strokes = Vec::new();
    let end = Instant::now() + config.duration;
    let mut tick = tokio::time::interval(STROKE_EVERY);
    let mut page = 0;
    let mut ticks = 0usize;
    while Instant::now() < end && !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        ticks += 1;
        let sent = if ticks % TURN_EVERY == 1 {
            page = page % PAGES + 1;
            let turn = match (document, page) {
                (Some(document), 1) => ClientMessage::OpenDocument {
                    document,
                    pages: PAGES,
                    page,
                },
                (Some(_), page) => ClientMessage::TurnPage { page },
                (None, page) => ClientMessage::ShowBlankBoard { page },
            };
            turns.push(Instant::now());
            teacher.send(turn).await
        } else {
            strokes.push(Instant::now());
            let n = (strokes.len() % 1000) as u16;
            let points = (0..20)
                .map(|i| Point(40 * i + 10, (n * 37 + 13 * i) % 900))
                .collect();
            let draw = ClientMessage::Draw {
                tool: Tool::Pen,
                colour: Colour([200, 30, 30]),
                width: 4,
                points,
                text: None,
            };
            match teacher.send(draw).await {
                Ok(_) => teacher.send(ClientMessage::DrawEnd).await,
                Err(e) => Err(e),
            }
        };
        sent.map_err(|e| RunError::Teacher(e.to_string()))?;
        // The teacher's own copies and replies are read so that its socket never backs up.
        while let Ok(Some(_)) = teacher.recv_within(Duration::ZERO).await {}
    }
    tokio::time::sleep(SETTLE).await;
    let _ = done.send(true);
    let heard: Vec<Option<Heard>> = join_all(listeners)
        .await
        .into_iter()
        .map(|r| r.ok().flatten())
        .collect();
    teacher.close().await;
    let pages_of = if document.is_some() {
        "document"
    } else {
        "blank board"
    };
    Ok(summarize(
        config.students,
        pages_of,
        &strokes,
        &turns,
        &heard,
    ))
}

/// Uploads a PDF of `PAGES` pages to `course` and waits until the server has prepared it; `None`
/// when it cannot (the run then turns the blank board's pages).
async fn prepared_document(api: &crate::api::Api, course: i64) -> Option<DocumentId> {
    let pdf = crate::pdf::pdf_of(PAGES as usize);
    let id = api.upload_pdf(course, "Load test slides", pdf).await.ok()?;
    let deadline = Instant::now() + DOCUMENT_WAIT;
    while Instant::now() < deadline {
        let document = api.document(id).await.ok()?;
        match document["state"].as_str() {
            Some("ready") => return Some(DocumentId(id)),
            Some("processing") => tokio::time::sleep(Duration::from_millis(250)).await,
            _ => return None,
        }
    }
    None
}

fn summarize(
    students: usize,
    pages_of: &'static str,
    strokes: &[Instant],
    turns: &[Instant],
    heard: &[Option<Heard>],
) -> BoardReport {
    let mut stroke_ms = Vec::new();
    let mut turn_ms = Vec::new();
    let mut strokes_missed = 0;
    let mut page_turns_missed = 0;
    let listening: Vec<&Heard> = heard.iter().flatten().collect();
    for h in &listening {
        let delays = |sent: &[Instant], got: &[Instant], out: &mut Vec<f64>| {
            for (s, g) in sent.iter().zip(got) {
                out.push(g.saturating_duration_since(*s).as_secs_f64() * 1000.0);
            }
            sent.len().saturating_sub(got.len())
        };
        strokes_missed += delays(strokes, &h.strokes, &mut stroke_ms);
        page_turns_missed += delays(turns, &h.turns, &mut turn_ms);
    }
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    BoardReport {
        students,
        students_listening: listening.len(),
        pages_of,
        strokes_sent: strokes.len(),
        page_turns_sent: turns.len(),
        stroke_max_ms: max(&stroke_ms),
        stroke_ms: Percentiles::of(&stroke_ms),
        page_turn_max_ms: max(&turn_ms),
        page_turn_ms: Percentiles::of(&turn_ms),
        strokes_missed,
        page_turns_missed,
    }
}

/// Joins the lesson over signaling only.
async fn connect(server: &Server) -> Result<Signaling, String> {
    let Server::Classroom { api, lesson } = server else {
        return Err("the board scenario runs against classroomd".into());
    };
    let ticket = api.join(*lesson).await.map_err(|e| e.to_string())?;
    let mut signaling = match &ticket.signaling_url {
        Some(url) => Signaling::connect_url(url).await,
        None => Signaling::connect(api.base()).await,
    }
    .map_err(|e| e.to_string())?;
    signaling
        .join(ticket.token, JOIN_WAIT)
        .await
        .map_err(|e| e.to_string())?;
    Ok(signaling)
}

/// A student: notes when each stroke and page turn arrives until `done`; `None` if they could
/// not join or lost the connection.
async fn listen(
    student: Server,
    document: bool,
    joined: Arc<AtomicUsize>,
    mut done: watch::Receiver<bool>,
) -> Option<Heard> {
    let mut signaling = connect(&student).await.ok()?;
    joined.fetch_add(1, Ordering::Relaxed);
    let mut heard = Heard::default();
    loop {
        tokio::select! {
            message = signaling.recv_within(Duration::from_secs(1)) => match message {
                Ok(Some(ServerMessage::Stroke { .. })) => heard.strokes.push(Instant::now()),
                // A document's page turn is its `slide`; the blank board's, its `board`.
                Ok(Some(ServerMessage::Slide { slide: Some(_) })) => heard.turns.push(Instant::now()),
                Ok(Some(ServerMessage::Board { .. })) if !document => heard.turns.push(Instant::now()),
                Ok(_) => {}
                Err(_) => return None,
            },
            _ = done.changed() => break,
        }
    }
    signaling.close().await;
    Some(heard)
}
