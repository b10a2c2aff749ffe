//! The breakout scenario: a teacher publishing to N students, who are split at random into
//! breakout rooms, talk there (each publishes audio and one video layer), one of them is moved
//! to another room, and all are brought back to the teacher. Every student follows each move
//! as a browser does (docs/protocol.md, "Breakout rooms"): on `moved` it drops its peer, reads
//! the new room's `joined` and offers a new peer there. It reports the media gap of every move
//! (from `moved` to the first frame on the new peer), whether each student heard all of its
//! room mates, and every track that reached a student from outside its room (there must be
//! none). While the students are in their rooms the teacher speaks to all rooms
//! (`speak_to_breakouts`) from the main room: every student must receive the teacher's voice
//! (`voice_track`, frames on it), and the voice track must end for each when the teacher stops.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    BreakoutMode, BreakoutRequest, BreakoutStatus, ClientMessage, ParticipantId, ServerMessage,
};
use classroom_protocol::{ParticipantRole, UserId};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::clip::Clips;
use crate::participant::Server;
use crate::peer::{self, Peer, Sending};
use crate::scenario::{RunConfig, RunError, set_up};
use crate::signaling::{Signaling, SignalingError};

/// How long the server may take to answer, and a move to complete.
const WAIT: Duration = Duration::from_secs(20);
/// What a student sends in a breakout room: its voice and one video layer (360p).
const IN_ROOM: Sending = Sending {
    audio: true,
    video_layers: 1,
};

/// One move of one student.
#[derive(Debug, Clone, Serialize)]
pub struct MoveSample {
    /// The breakout room (from 0), or `None` for the main room.
    pub to: Option<u32>,
    /// From `moved` to the first frame on the new peer.
    pub gap_ms: Option<f64>,
}

/// What one student saw, shared with the run while it goes on.
#[derive(Debug, Default)]
struct Student {
    user: Option<UserId>,
    main_id: Option<ParticipantId>,
    room: Option<u32>,
    moves: Vec<MoveSample>,
    /// Users whose frames arrived on the current peer.
    heard: HashSet<UserId>,
    /// Tracks announced from someone outside the student's room (never expected), counted
    /// at the end of each stay in a room.
    foreign_tracks: u64,
    /// Where the main room's students are (user → room), from the last `breakouts`.
    placement: HashMap<UserId, u32>,
    /// This stay: who sent us tracks, and who was placed in our room at some point of it
    /// (a student moved away during the stay was a room mate until then).
    senders: HashSet<(UserId, ParticipantRole)>,
    mates: HashSet<UserId>,
    /// Frames of the teacher's voice to every room arrived (`voice_track`).
    heard_voice: bool,
    /// The voice track ended (the teacher stopped speaking to the rooms).
    voice_ended: bool,
    error: Option<String>,
}

impl Student {
    /// The placement changed: everyone placed in our room now was a mate during this stay.
    fn placed(&mut self, placement: HashMap<UserId, u32>) {
        if let Some(room) = self.room {
            let mates = placement
                .iter()
                .filter(|(_, r)| **r == room)
                .map(|(u, _)| *u);
            self.mates.extend(mates);
        }
        self.placement = placement;
    }

    /// A stay ends: counts the tracks that came from outside the room. In the main room only
    /// the teacher publishes.
    fn end_stay(&mut self) {
        let foreign = self
            .senders
            .iter()
            .filter(|(user, role)| match self.room {
                None => *role != ParticipantRole::Teacher,
                Some(_) => !self.mates.contains(user),
            })
            .count();
        self.foreign_tracks += foreign as u64;
        self.senders.clear();
        self.mates.clear();
    }
}

type Shared = Arc<Mutex<Student>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Student> {
    s.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The gaps of one kind of move, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GapSummary {
    pub moves: usize,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl GapSummary {
    fn of(mut gaps: Vec<f64>) -> GapSummary {
        gaps.sort_by(f64::total_cmp);
        let at = |q: f64| {
            (!gaps.is_empty()).then(|| gaps[((gaps.len() - 1) as f64 * q).round() as usize])
        };
        GapSummary {
            moves: gaps.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: gaps.last().copied(),
        }
    }
}

/// What the breakout scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct BreakoutReport {
    pub students: usize,
    pub rooms: u32,
    /// Students who joined and heard the teacher before the rooms opened.
    pub ready: usize,
    /// Into the breakout rooms, between two rooms, back to the main room.
    pub gap_into: GapSummary,
    pub gap_between: GapSummary,
    pub gap_back: GapSummary,
    /// Students who heard every room mate in their breakout room.
    pub heard_all_mates: usize,
    /// Tracks that reached a student from outside its room (must be 0).
    pub foreign_tracks: u64,
    /// Students who heard the teacher again after the rooms closed.
    pub back_with_teacher: usize,
    /// Students in a breakout room who received the teacher's voice to every room, and from
    /// when the teacher turned it on to the last of them hearing it.
    pub heard_teacher_voice: usize,
    pub voice_reached_all_ms: Option<f64>,
    /// Students whose voice track ended when the teacher stopped speaking to the rooms.
    pub voice_ended: usize,
    pub errors: Vec<String>,
}

impl BreakoutReport {
    /// The human-readable summary the tool prints.
    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
        let row = |name: &str, g: &GapSummary| {
            format!(
                "| {name} | {} | {} | {} | {} |\n",
                g.moves,
                ms(g.p50_ms),
                ms(g.p95_ms),
                ms(g.max_ms)
            )
        };
        let mut out = format!(
            "breakout: {} students, {} rooms; ready {}, heard all mates {}, foreign tracks {}, back with the teacher {}\n",
            self.students,
            self.rooms,
            self.ready,
            self.heard_all_mates,
            self.foreign_tracks,
            self.back_with_teacher
        );
        out.push_str(&format!(
            "teacher's voice to every room: heard by {} students (all within {} ms), ended for {}\n",
            self.heard_teacher_voice,
            ms(self.voice_reached_all_ms),
            self.voice_ended
        ));
        out.push_str("| media gap per move | moves | p50 (ms) | p95 (ms) | max (ms) |\n|---|---|---|---|---|\n");
        out.push_str(&row("into a breakout room", &self.gap_into));
        out.push_str(&row("between two rooms", &self.gap_between));
        out.push_str(&row("back to the main room", &self.gap_back));
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        out
    }
}

/// Runs the scenario with `rooms` breakout rooms: `config.students` students, media for
/// `config.duration` in the rooms.
pub async fn run(
    config: RunConfig,
    rooms: u32,
    mut stop: watch::Receiver<bool>,
) -> Result<BreakoutReport, RunError> {
    let clips = Clips::builtin()?;
    let api = Api::new(&config.server);
    let lesson = set_up(&api, &config).await?;
    let Server::Classroom {
        api: teacher_api,
        lesson: lesson_id,
    } = lesson.teacher
    else {
        return Err(RunError::Unsupported("breakout"));
    };
    let mut teacher = Teacher::start(&config, &clips, &teacher_api, lesson_id).await?;

    let mut students: Vec<(Shared, watch::Sender<bool>, JoinHandle<()>)> = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / config.join_rate.max(0.01));
    for server in lesson.students {
        let Server::Classroom { api, lesson } = server else {
            continue;
        };
        let shared = Shared::default();
        let (halt, halted) = watch::channel(false);
        let task = tokio::spawn(student(
            api,
            lesson,
            config.clone(),
            clips.clone(),
            shared.clone(),
            halted,
        ));
        students.push((shared, halt, task));
        teacher.pump(interval).await;
    }
    let all = |check: &dyn Fn(&Student) -> bool| {
        students.iter().filter(|(s, _, _)| check(&lock(s))).count()
    };
    let hears_teacher = |s: &Student| s.room.is_none() && s.user.is_some() && !s.heard.is_empty();
    teacher
        .pump_until(WAIT, &mut stop, || all(&hears_teacher) == students.len())
        .await;
    let ready = all(&hears_teacher);

    // Into the rooms, at random.
    let open = ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms,
            mode: BreakoutMode::Random,
            assignment: Vec::new(),
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        },
    };
    teacher.request(open).await?;
    let moved = |n: usize| move |s: &Student| s.moves.len() >= n && s.moves[n - 1].gap_ms.is_some();
    teacher
        .pump_until(WAIT, &mut stop, || all(&moved(1)) == ready)
        .await;
    teacher.pump(config.duration).await;
    let heard_all_mates = all(&|s: &Student| {
        let Some(room) = s.room else { return false };
        s.placement
            .iter()
            .filter(|(u, r)| **r == room && Some(**u) != s.user)
            .all(|(u, _)| s.heard.contains(u))
    });

    // The teacher speaks to every room from the main room, then stops.
    let in_a_room = all(&|s: &Student| s.room.is_some());
    let voice_on = Instant::now();
    teacher
        .request(ClientMessage::SpeakToBreakouts { on: true })
        .await?;
    teacher
        .pump_until(WAIT, &mut stop, || {
            all(&|s: &Student| s.heard_voice) == in_a_room
        })
        .await;
    let heard_teacher_voice = all(&|s: &Student| s.heard_voice);
    let voice_reached_all_ms =
        (heard_teacher_voice == in_a_room).then(|| voice_on.elapsed().as_secs_f64() * 1000.0);
    teacher
        .request(ClientMessage::SpeakToBreakouts { on: false })
        .await?;
    teacher
        .pump_until(WAIT, &mut stop, || {
            all(&|s: &Student| s.voice_ended) == heard_teacher_voice
        })
        .await;
    let voice_ended = all(&|s: &Student| s.voice_ended);

    // One student to the next room.
    let first = students.first().map(|(s, _, _)| {
        let s = lock(s);
        (s.main_id, s.room)
    });
    if let Some((Some(participant), Some(room))) = first {
        let to = (room + 1) % rooms;
        teacher
            .request(ClientMessage::MoveToBreakout {
                participant,
                room: Some(to),
            })
            .await?;
        let target = &students[0].0;
        teacher
            .pump_until(WAIT, &mut stop, || moved(2)(&lock(target)))
            .await;
    }

    // Back to the teacher.
    teacher.request(ClientMessage::CloseBreakouts).await?;
    let back = |s: &Student| {
        s.room.is_none()
            && s.moves
                .last()
                .is_some_and(|m| m.to.is_none() && m.gap_ms.is_some())
    };
    teacher
        .pump_until(WAIT, &mut stop, || all(&back) == ready)
        .await;
    let back_with_teacher = all(&back);

    let mut into = Vec::new();
    let mut between = Vec::new();
    let mut back_gaps = Vec::new();
    let mut foreign_tracks = 0;
    let mut errors = Vec::new();
    for (shared, _, _) in &students {
        let s = lock(shared);
        foreign_tracks += s.foreign_tracks;
        errors.extend(s.error.clone());
        for (i, m) in s.moves.iter().enumerate() {
            let Some(gap) = m.gap_ms else { continue };
            match (i, m.to) {
                (_, None) => back_gaps.push(gap),
                (0, Some(_)) => into.push(gap),
                (_, Some(_)) => between.push(gap),
            }
        }
    }
    for (_, halt, task) in students {
        let _ = halt.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    teacher.leave().await;
    Ok(BreakoutReport {
        students: config.students,
        rooms,
        ready,
        gap_into: GapSummary::of(into),
        gap_between: GapSummary::of(between),
        gap_back: GapSummary::of(back_gaps),
        heard_all_mates,
        foreign_tracks,
        back_with_teacher,
        heard_teacher_voice,
        voice_reached_all_ms,
        voice_ended,
        errors,
    })
}

/// The teacher: publishes in the main room and runs the rooms.
struct Teacher {
    ws: Signaling,
    peer: Peer,
}

impl Teacher {
    async fn start(
        config: &RunConfig,
        clips: &Arc<Clips>,
        api: &Api,
        lesson: i64,
    ) -> Result<Teacher, RunError> {
        let fail = |e: &dyn std::fmt::Display| RunError::Teacher(e.to_string());
        let ticket = api.join(lesson).await?;
        let mut ws = Signaling::connect(api.base()).await.map_err(|e| fail(&e))?;
        ws.join(ticket.token, WAIT).await.map_err(|e| fail(&e))?;
        let sending = Sending {
            audio: true,
            video_layers: 1,
        };
        let (peer, offer) = Peer::start(
            config.bind_ip,
            config.transport,
            clips.clone(),
            sending,
            0,
            None,
        )
        .await
        .map_err(|e| fail(&e))?;
        let mut teacher = Teacher { ws, peer };
        let answer = teacher
            .request(ClientMessage::Offer {
                sdp: offer,
                sources: Default::default(),
            })
            .await?;
        if let ServerMessage::Answer { sdp, .. } = answer {
            teacher
                .peer
                .accept_answer(sdp)
                .await
                .map_err(|e| fail(&e))?;
        }
        Ok(teacher)
    }

    /// Sends `message` and waits for its reply; a refusal is an error.
    async fn request(&mut self, message: ClientMessage) -> Result<ServerMessage, RunError> {
        let fail = |e: &dyn std::fmt::Display| RunError::Teacher(e.to_string());
        let id = self.ws.send(message).await.map_err(|e| fail(&e))?;
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            match self.ws.recv_within(Duration::from_millis(100)).await {
                Ok(Some(ServerMessage::Error {
                    id: Some(got),
                    code,
                    message,
                    ..
                })) if got == id => return Err(fail(&format!("{code}: {message}"))),
                Ok(Some(reply @ (ServerMessage::Ok { .. } | ServerMessage::Answer { .. })))
                    if reply_id(&reply) == Some(id) =>
                {
                    return Ok(reply);
                }
                Ok(Some(ServerMessage::Offer { sdp })) => self.answer(sdp).await,
                Ok(_) => {}
                Err(e) => return Err(fail(&e)),
            }
        }
        Err(fail(&SignalingError::Timeout(WAIT)))
    }

    async fn answer(&mut self, sdp: String) {
        if let Ok(answer) = self.peer.accept_offer(sdp).await {
            let _ = self.ws.send(ClientMessage::Answer { sdp: answer }).await;
        }
    }

    /// Handles signaling for `wait`.
    async fn pump(&mut self, wait: Duration) {
        let end = Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self
                .ws
                .recv_within(left.min(Duration::from_millis(100)))
                .await
            {
                Ok(Some(ServerMessage::Offer { sdp })) => self.answer(sdp).await,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Handles signaling until `done` or `wait` passes (or the run is stopped).
    async fn pump_until(
        &mut self,
        wait: Duration,
        stop: &mut watch::Receiver<bool>,
        done: impl Fn() -> bool,
    ) {
        let end = Instant::now() + wait;
        while Instant::now() < end && !done() && !*stop.borrow() {
            self.pump(Duration::from_millis(50)).await;
        }
    }

    async fn leave(mut self) {
        let _ = self.ws.send(ClientMessage::Leave).await;
        self.ws.close().await;
        self.peer.stop();
    }
}

fn reply_id(message: &ServerMessage) -> Option<u64> {
    match message {
        ServerMessage::Ok { id } => Some(*id),
        ServerMessage::Answer { id, .. } => *id,
        _ => None,
    }
}

/// One student until halted; its error, if any, goes to its record.
async fn student(
    api: Api,
    lesson: i64,
    config: RunConfig,
    clips: Arc<Clips>,
    shared: Shared,
    halted: watch::Receiver<bool>,
) {
    if let Err(e) = follow(&api, lesson, &config, &clips, &shared, halted).await {
        lock(&shared).error = Some(e);
    }
}

/// A student's signaling and media: joins, receives the teacher, and follows every move.
async fn follow(
    api: &Api,
    lesson: i64,
    config: &RunConfig,
    clips: &Arc<Clips>,
    shared: &Shared,
    mut halted: watch::Receiver<bool>,
) -> Result<(), String> {
    let ticket = api.join(lesson).await.map_err(|e| e.to_string())?;
    let mut ws = Signaling::connect(api.base())
        .await
        .map_err(|e| e.to_string())?;
    ws.send(ClientMessage::join(ticket.token))
        .await
        .map_err(|e| e.to_string())?;
    // Who is who in the room we are in, and in the main room.
    let mut users: HashMap<ParticipantId, (UserId, ParticipantRole)> = HashMap::new();
    let mut main_users: HashMap<ParticipantId, UserId> = HashMap::new();
    let mut tracks: HashMap<String, ParticipantId> = HashMap::new();
    // The m-lines carrying the teacher's voice to every room.
    let mut voice: HashSet<String> = HashSet::new();
    let mut peer: Option<Peer> = None;
    let mut offer_id = None;
    let mut moved_at: Option<Instant> = None;
    let start_peer = |sending: Sending| {
        Peer::start(
            config.bind_ip,
            config.transport,
            clips.clone(),
            sending,
            1,
            None,
        )
    };
    loop {
        if *halted.borrow() {
            break;
        }
        let message = tokio::select! {
            _ = halted.changed() => break,
            message = ws.recv_within(Duration::from_millis(20)) => message.map_err(|e| e.to_string())?,
        };
        match message {
            Some(ServerMessage::Joined {
                you, participants, ..
            }) => {
                users = participants
                    .iter()
                    .map(|p| (p.id, (p.user_id, p.role)))
                    .collect();
                let room = {
                    let mut s = lock(shared);
                    s.user = Some(you.user_id);
                    if s.room.is_none() {
                        s.main_id = Some(you.id);
                        main_users = participants.iter().map(|p| (p.id, p.user_id)).collect();
                    }
                    s.heard.clear();
                    s.room
                };
                tracks.clear();
                voice.clear();
                let sending = if room.is_some() {
                    IN_ROOM
                } else {
                    Sending::NOTHING
                };
                let (new_peer, offer) = start_peer(sending).await.map_err(|e| e.to_string())?;
                peer = Some(new_peer);
                let offer = ClientMessage::Offer {
                    sdp: offer,
                    sources: Default::default(),
                };
                offer_id = Some(ws.send(offer).await.map_err(|e| e.to_string())?);
            }
            Some(ServerMessage::Answer { id, sdp }) if id.is_some() && id == offer_id => {
                if let Some(peer) = &peer {
                    peer.accept_answer(sdp).await.map_err(|e| e.to_string())?;
                }
            }
            Some(ServerMessage::Offer { sdp }) => {
                if let Some(peer) = &peer {
                    let answer = peer.accept_offer(sdp).await.map_err(|e| e.to_string())?;
                    ws.send(ClientMessage::Answer { sdp: answer })
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Some(ServerMessage::ParticipantJoined { participant }) => {
                users.insert(participant.id, (participant.user_id, participant.role));
                if lock(shared).room.is_none() {
                    main_users.insert(participant.id, participant.user_id);
                }
            }
            Some(ServerMessage::Track {
                mid, participant, ..
            }) => {
                tracks.insert(mid, participant);
                let mut s = lock(shared);
                match users.get(&participant) {
                    Some(sender) => {
                        s.senders.insert(*sender);
                    }
                    // A track from nobody of this room.
                    None => s.foreign_tracks += 1,
                }
            }
            Some(ServerMessage::TrackEnded { mid }) => {
                tracks.remove(&mid);
                if voice.remove(&mid) {
                    lock(shared).voice_ended = true;
                }
            }
            Some(ServerMessage::VoiceTrack { mid }) => {
                voice.insert(mid);
            }
            Some(ServerMessage::Breakouts { breakouts }) => {
                lock(shared).placed(placement(breakouts.as_ref(), &main_users));
            }
            Some(ServerMessage::Moved { to }) => {
                if let Some(old) = peer.take() {
                    old.stop();
                }
                moved_at = Some(Instant::now());
                let mut s = lock(shared);
                s.end_stay();
                s.room = to.map(|p| p.index);
                let placement = std::mem::take(&mut s.placement);
                s.placed(placement);
                let to = s.room;
                s.moves.push(MoveSample { to, gap_ms: None });
            }
            Some(ServerMessage::LessonEnded | ServerMessage::Removed { .. }) => {
                return Err(SignalingError::Closed.to_string());
            }
            _ => {}
        }
        // Who we hear on this peer, and the end of a move's gap.
        if let Some(peer) = &peer {
            let stats = peer::lock(&peer.stats);
            let mut s = lock(shared);
            for (mid, participant) in &tracks {
                if stats.frames_on(mid) > 0
                    && let Some((user, _)) = users.get(participant)
                {
                    s.heard.insert(*user);
                }
            }
            if voice.iter().any(|mid| stats.frames_on(mid) > 0) {
                s.heard_voice = true;
            }
            if let Some(at) = moved_at
                && !s.heard.is_empty()
            {
                if let Some(last) = s.moves.last_mut() {
                    last.gap_ms = Some(at.elapsed().as_secs_f64() * 1000.0);
                }
                moved_at = None;
            }
        }
    }
    lock(shared).end_stay();
    let _ = ws.send(ClientMessage::Leave).await;
    ws.close().await;
    if let Some(peer) = peer {
        peer.stop();
    }
    Ok(())
}

/// Where each student of the main room is, by user.
fn placement(
    status: Option<&BreakoutStatus>,
    main_users: &HashMap<ParticipantId, UserId>,
) -> HashMap<UserId, u32> {
    let Some(status) = status else {
        return HashMap::new();
    };
    status
        .rooms
        .iter()
        .flat_map(|room| {
            room.members
                .iter()
                .filter_map(|id| main_users.get(id).map(|user| (*user, room.index)))
        })
        .collect()
}
