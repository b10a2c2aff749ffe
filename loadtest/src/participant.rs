//! One simulated participant, as a browser tab would behave: get a join token, open the
//! WebSocket, join, offer its m-lines, answer the server's offers, note which track arrives
//! on which m-line, and leave when told to stop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use classroom_protocol::signal::{ClientMessage, MediaKind, ParticipantId, ServerMessage};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::api::{Api, ApiError};
use crate::clip::Clips;
use crate::ingest::frames::SentFrames;
use crate::janus::{self, JanusError};
use crate::link::Transport;
use crate::peer::{Peer, PeerError, PeerStats, Sending};
use crate::signaling::{Signaling, SignalingError};

/// How long the server may take to answer a join or an offer.
const REPLY_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum ParticipantError {
    #[error("join token: {0}")]
    Api(#[from] ApiError),
    #[error("signaling: {0}")]
    Signaling(#[from] SignalingError),
    #[error("media: {0}")]
    Peer(#[from] PeerError),
    #[error("the offer was refused: {0}")]
    OfferRefused(String),
    #[error("janus: {0}")]
    Janus(#[from] JanusError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Teacher,
    Student,
}

/// The server under test, as one participant reaches it.
#[derive(Clone)]
pub enum Server {
    /// classroomd: signed in as this participant's account, joining this lesson.
    Classroom { api: Api, lesson: i64 },
    /// Janus's VideoRoom: the teacher publishes into the room, students subscribe.
    Janus {
        http: reqwest::Client,
        room: janus::Room,
    },
}

/// What one participant does.
#[derive(Clone)]
pub struct Plan {
    pub name: String,
    pub role: Role,
    pub server: Server,
    pub sending: Sending,
    /// Pairs of recvonly m-lines (audio + video) offered at first.
    pub receive: usize,
    pub bind_ip: IpAddr,
    pub transport: Transport,
    pub clips: Arc<Clips>,
    /// Teachers: invite to stage everyone whose id arrives here.
    pub stage_requests: Option<Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ParticipantId>>>>,
    /// Students on stage: ask the teacher for the stage through this.
    pub ask_stage: Option<mpsc::UnboundedSender<ParticipantId>>,
    /// Receive H.264 too (an RTMP encoder's), timing its pictures against these sends.
    pub h264: Option<Arc<SentFrames>>,
}

/// What a participant did and measured, shared with the report while it runs.
#[derive(Debug)]
pub struct Record {
    pub name: String,
    pub role: Role,
    pub ws_open: Option<Instant>,
    pub left_at: Option<Instant>,
    pub id: Option<ParticipantId>,
    /// Our m-line → (publisher, kind), from `track` messages.
    pub tracks: HashMap<String, (ParticipantId, MediaKind)>,
    pub peer: Option<Arc<Mutex<PeerStats>>>,
    pub error: Option<String>,
}

impl Record {
    pub fn new(plan: &Plan) -> Record {
        Record {
            name: plan.name.clone(),
            role: plan.role,
            ws_open: None,
            left_at: None,
            id: None,
            tracks: HashMap::new(),
            peer: None,
            error: None,
        }
    }
}

pub type SharedRecord = Arc<Mutex<Record>>;

pub fn lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    record
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the participant until `stop` turns true; errors are also written to the record.
pub async fn run(plan: Plan, record: SharedRecord, stop: watch::Receiver<bool>) {
    let result = match &plan.server {
        Server::Classroom { api, lesson } => live(&plan, api, *lesson, &record, stop).await,
        Server::Janus { http, room } => live_janus(&plan, http, room, &record, stop).await,
    };
    let mut record = lock(&record);
    record.left_at = Some(Instant::now());
    if let Err(e) = result {
        record.error = Some(e.to_string());
    }
}

async fn live(
    plan: &Plan,
    api: &Api,
    lesson: i64,
    record: &SharedRecord,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ParticipantError> {
    let ticket = api.join(lesson).await?;
    // Several nodes: the lesson's room may be on another node than the one asked.
    let mut ws = match &ticket.signaling_url {
        Some(url) => Signaling::connect_url(url).await?,
        None => Signaling::connect(api.base()).await?,
    };
    lock(record).ws_open = Some(Instant::now());
    let me = ws.join(ticket.token, REPLY_WAIT).await?;
    lock(record).id = Some(me);

    let (peer, offer) = Peer::start(
        plan.bind_ip,
        plan.transport,
        plan.clips.clone(),
        plan.sending,
        plan.receive,
        plan.h264.clone(),
    )
    .await?;
    lock(record).peer = Some(peer.stats.clone());
    let offer_id = ws
        .send(ClientMessage::Offer {
            sdp: offer,
            sources: Default::default(),
        })
        .await?;
    if let Some(ask) = &plan.ask_stage {
        let _ = ask.send(me);
    }
    let mut stage_requests = match &plan.stage_requests {
        Some(shared) => Some(shared.lock().await),
        None => None,
    };
    let mut answered = false;
    let answer_deadline = Instant::now() + REPLY_WAIT;
    loop {
        if *stop.borrow() {
            break;
        }
        if !answered && Instant::now() > answer_deadline {
            return Err(SignalingError::Timeout(REPLY_WAIT).into());
        }
        let invite = async {
            match stage_requests.as_mut() {
                Some(requests) => requests.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            Some(participant) = invite => {
                ws.send(ClientMessage::InviteToStage { participant }).await?;
            }
            message = ws.recv_within(Duration::from_secs(1)) => {
                let Some(message) = message? else { continue };
                match message {
                    ServerMessage::Answer { id: Some(id), sdp } if id == offer_id => {
                        peer.accept_answer(sdp).await?;
                        answered = true;
                    }
                    ServerMessage::Error { id: Some(id), code, message, .. } if id == offer_id => {
                        return Err(ParticipantError::OfferRefused(format!("{code}: {message}")));
                    }
                    ServerMessage::Offer { sdp } => {
                        let answer = peer.accept_offer(sdp).await?;
                        ws.send(ClientMessage::Answer { sdp: answer }).await?;
                    }
                    ServerMessage::Track { mid, participant, kind, .. } => {
                        lock(record).tracks.insert(mid, (participant, kind));
                    }
                    ServerMessage::TrackEnded { mid } => {
                        lock(record).tracks.remove(&mid);
                    }
                    ServerMessage::LessonEnded | ServerMessage::Removed { .. } => {
                        return Err(SignalingError::Closed.into());
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = ws.send(ClientMessage::Leave).await;
    ws.close().await;
    peer.stop();
    Ok(())
}

/// The same participant against Janus's VideoRoom. "WebSocket open" (the start of the join
/// times) is when the Janus session exists, the moment its transport is ready for the join.
/// The teacher joins as the publisher `TEACHER_FEED` and publishes its offer; a student joins
/// as a subscriber of that feed, answers Janus's offer and starts.
async fn live_janus(
    plan: &Plan,
    http: &reqwest::Client,
    room: &janus::Room,
    record: &SharedRecord,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ParticipantError> {
    let mut session = janus::Session::open(http, &room.url).await?;
    lock(record).ws_open = Some(Instant::now());
    let peer = match plan.role {
        Role::Teacher => {
            session
                .request(
                    serde_json::json!({"request": "join", "ptype": "publisher", "room": room.id,
                        "id": janus::TEACHER_FEED, "display": plan.name}),
                    None,
                )
                .await?;
            session.event("joined", REPLY_WAIT).await?;
            lock(record).id = Some(ParticipantId(janus::TEACHER_FEED));
            let (peer, offer) = Peer::start(
                plan.bind_ip,
                plan.transport,
                plan.clips.clone(),
                plan.sending,
                0,
                None,
            )
            .await?;
            lock(record).peer = Some(peer.stats.clone());
            session
                .request(
                    serde_json::json!({"request": "publish", "audio": plan.sending.audio,
                        "video": plan.sending.video_layers > 0}),
                    Some(janus::publisher_jsep(offer)),
                )
                .await?;
            let (_, jsep) = session.event("event", REPLY_WAIT).await?;
            peer.accept_answer(janus::jsep_sdp(jsep.as_ref(), "answer")?)
                .await?;
            peer
        }
        Role::Student => {
            session
                .request(
                    serde_json::json!({"request": "join", "ptype": "subscriber", "room": room.id,
                        "streams": [{"feed": janus::TEACHER_FEED}]}),
                    None,
                )
                .await?;
            let (data, jsep) = session.event("attached", REPLY_WAIT).await?;
            lock(record).id = Some(ParticipantId(data["id"].as_u64().unwrap_or(0)));
            let peer = Peer::answering(plan.bind_ip, plan.clips.clone()).await?;
            lock(record).peer = Some(peer.stats.clone());
            let answer = peer
                .accept_offer(janus::jsep_sdp(jsep.as_ref(), "offer")?)
                .await?;
            session
                .request(
                    serde_json::json!({"request": "start"}),
                    Some(janus::jsep("answer", answer)),
                )
                .await?;
            peer
        }
    };
    // Media flows until told to stop; Janus's events (webrtcup, media, slowlink) need nothing.
    let _ = stop.wait_for(|stopped| *stopped).await;
    session.destroy().await;
    peer.stop();
    Ok(())
}
