//! WHEP playback: an embedded player or an overflow audience receives the lesson's main view
//! over WebRTC with one HTTP exchange.
//!
//! - `POST /whep` with an SDP offer (`recvonly` video, and audio if wanted) and
//!   `Authorization: Bearer <join token>`: the token is the one `POST
//!   /api/v1/lessons/{id}/join` gives (it names the lesson, expires within minutes, and is
//!   refused once its holder was removed, the lesson ended or the account was disabled); it
//!   must carry the `subscribe` grant. A join token rather than a new kind of key: whoever may
//!   watch the lesson in the web client may watch it in a player, and nobody else, with the
//!   checks the web client's join already has. `201 Created` with the answer and `Location`.
//! - The player is a pinned SFU peer (`classroom_media::Sfu::set_pins`): never a participant
//!   (it is audience, not in the participant list), sent no offers, and given the main view:
//!   the video the restream would show (a teacher's screen share first, then the encoder, a
//!   teacher's camera, anyone's camera), with the voice of the same publisher (else a
//!   teacher's microphone). [`follow`] chooses again twice a second, as the restream does.
//! - `DELETE /whep/sessions/{session}` with the same bearer ends it; `PATCH` as for WHIP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use classroom_courses::api::error::ApiError;
use classroom_media::driver::MediaHandle;
use classroom_media::{Mid, PeerId};
use classroom_protocol::{LessonId, ParticipantRole, RoomName, TrackSource};
use classroom_signaling::{AdmitError, PeerIds, Publisher, Rooms};
use tokio::sync::watch;

use crate::http::AppState;
use crate::whip::sdp::MediaKind;
use crate::whip::{self, SESSION_METHODS, SessionRefusal, bearer, unauthorized};

/// How often the main view is chosen again.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// The WHEP players of this node.
#[derive(Debug, Default)]
pub struct WhepSessions {
    sessions: Mutex<HashMap<String, Player>>,
    /// The node's one source of peer ids (signaling's), so that a player's never collides.
    ids: PeerIds,
}

#[derive(Debug, Clone)]
struct Player {
    lesson: LessonId,
    peer: PeerId,
    token: String,
    ice_ufrag: Option<String>,
    /// What it was last pinned to.
    pins: Vec<(PeerId, Mid)>,
}

impl WhepSessions {
    /// Players whose peer ids come from `ids`, the node's one source of peer ids.
    pub fn new(ids: PeerIds) -> Self {
        WhepSessions {
            sessions: Mutex::default(),
            ids,
        }
    }

    /// How many players watch now.
    pub fn players(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Player>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The main view of a room's `publishers`: the pins of a player, best first (one video, and
/// the voice that goes with it; every m-line of an encoder, whose kinds signaling does not
/// know and the SFU sorts out).
pub fn main_view(publishers: &[Publisher]) -> Vec<(PeerId, Mid)> {
    use classroom_rtmp::restream::TrackRef;
    use classroom_rtmp::restream::select::{self, VideoCandidate, VideoSource};
    let mut videos = Vec::new();
    let mut candidates = Vec::new();
    for publisher in publishers {
        let teacher = publisher.role == ParticipantRole::Teacher;
        for (mid, source) in &publisher.sources {
            let source = match source {
                TrackSource::Screen => VideoSource::Screen,
                TrackSource::Camera => VideoSource::Camera,
                TrackSource::Encoder => VideoSource::Encoder,
                TrackSource::Microphone | TrackSource::ScreenAudio => continue,
            };
            candidates.push(VideoCandidate {
                track: TrackRef(videos.len() as u64),
                source,
                teacher,
            });
            videos.push((publisher, mid));
        }
    }
    let Some(TrackRef(chosen)) = select::main_view(&candidates) else {
        return Vec::new();
    };
    let Some(&(shown, video_mid)) = usize::try_from(chosen).ok().and_then(|i| videos.get(i)) else {
        return Vec::new();
    };
    let mics = |p: &Publisher| -> Vec<(PeerId, Mid)> {
        (p.sources.iter())
            .filter(|(_, s)| **s == TrackSource::Microphone)
            .map(|(mid, _)| (p.peer, Mid::from(mid.as_str())))
            .collect()
    };
    let mut pins = vec![(shown.peer, Mid::from(video_mid.as_str()))];
    if shown.sources.values().all(|s| *s == TrackSource::Encoder) {
        // The encoder's other m-lines: its audio.
        pins.extend(
            (shown.sources.keys())
                .filter(|mid| *mid != video_mid)
                .map(|mid| (shown.peer, Mid::from(mid.as_str()))),
        );
    }
    pins.extend(mics(shown));
    for teacher in publishers
        .iter()
        .filter(|p| p.role == ParticipantRole::Teacher && p.peer != shown.peer)
    {
        pins.extend(mics(teacher));
    }
    pins
}

/// Starts a WHEP session: the player's offer in, the SFU's answer out.
#[utoipa::path(
    post, path = "/whep", tag = "live",
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/sdp", description = "The player's SDP offer: recvonly video (and audio)"),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session to DELETE", body = String, content_type = "application/sdp"),
        (status = 400, description = "Not an SDP offer, or one that receives no video", body = classroom_protocol::ErrorBody),
        (status = 401, description = "No join token, or an invalid or expired one", body = classroom_protocol::ErrorBody),
        (status = 403, description = "The token lacks the subscribe grant, or its holder may not watch now", body = classroom_protocol::ErrorBody),
        (status = 409, description = "Several nodes: the lesson is on another node (`wrong_node`)", body = classroom_protocol::ErrorBody),
        (status = 413, description = "The offer is too large", body = classroom_protocol::ErrorBody),
        (status = 415, description = "Not `application/sdp`", body = classroom_protocol::ErrorBody),
        (status = 503, description = "The media server or the database is not answering", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn whep_play(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    whip::cors(play(&state, &headers, &body).await, whip::ENDPOINT_METHODS)
}

async fn play(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(token) = bearer(headers) else {
        return unauthorized("send a join token of the lesson as `Authorization: Bearer <token>`");
    };
    let live = &state.live;
    let claims = match live.verifier.verify(token) {
        Ok(claims) => claims,
        Err(e) => return unauthorized(&e.to_string()),
    };
    if !claims.grants.subscribe {
        return ApiError::forbidden("missing_grant", "the join token lacks the subscribe grant")
            .into_response();
    }
    if let Err(e) = live.verifier.admit(&claims).await {
        return match e {
            AdmitError::Denied(_) => ApiError::forbidden("forbidden", e.to_string()),
            AdmitError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            AdmitError::ElsewhereNode => {
                ApiError::new(StatusCode::CONFLICT, "wrong_node", e.to_string())
            }
        }
        .into_response();
    }
    // The token first: whoever has none learns nothing about what the body should be.
    let (offer, summary) = match whip::read_offer(headers, body) {
        Ok(offer) => offer,
        Err(e) => return e.into_response(),
    };
    if !summary.receives(MediaKind::Video) {
        return ApiError::bad_request("no_video", "the offer receives no video (recvonly)")
            .into_response();
    }
    let lesson = claims.lesson;
    let room = RoomName::for_lesson(lesson);
    let pins = main_view(&live.rooms.publishers(&room));
    let players = &live.whep;
    let peer = players.ids.next();
    let added = live
        .media
        .add_pinned_peer(peer, room, offer, false, Some(pins.clone()))
        .await;
    match added {
        Ok(answer) => {
            let id = classroom_courses::auth::random_token(16);
            let player = Player {
                lesson,
                peer,
                token: token.to_owned(),
                ice_ufrag: summary.ice_ufrag,
                pins,
            };
            players.lock().insert(id.clone(), player);
            tracing::info!(%lesson, %peer, "WHEP player started");
            whip::created(
                answer,
                &format!("/whep/sessions/{id}"),
                whip::ENDPOINT_METHODS,
            )
        }
        Err(e) => whip::media_refusal(e).into_response(),
    }
}

/// `OPTIONS` on the endpoint: CORS preflight.
#[utoipa::path(
    options, path = "/whep", tag = "live",
    responses((status = 204, description = "CORS preflight; `Accept-Post: application/sdp`"))
)]
pub async fn whep_options() -> Response {
    whip::whip_options().await
}

/// Ends a WHEP session.
#[utoipa::path(
    delete, path = "/whep/sessions/{session}", tag = "live",
    security(("bearer" = [])),
    params(("session" = String, Path, description = "From the `Location` of the POST")),
    responses(
        (status = 200, description = "Ended"),
        (status = 401, description = "No token, or not the session's", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such session (or it ended)", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn whep_delete(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Response {
    let players = &state.live.whep;
    let response = match player_of(players, &session, &headers) {
        Err(refusal) => refusal.response("join token"),
        Ok(player) => {
            players.lock().remove(&session);
            let _ = state.live.media.remove_peer(player.peer).await;
            tracing::info!(lesson = %player.lesson, peer = %player.peer, "WHEP player stopped");
            StatusCode::OK.into_response()
        }
    };
    whip::cors(response, SESSION_METHODS)
}

/// Trickle ICE for a WHEP session (taken and not needed; restarts refused).
#[utoipa::path(
    patch, path = "/whep/sessions/{session}", tag = "live",
    security(("bearer" = [])),
    params(("session" = String, Path, description = "From the `Location` of the POST")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses(
        (status = 204, description = "Candidates taken (the server is ICE-lite and needs none)"),
        (status = 401, description = "No token, or not the session's", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such session", body = classroom_protocol::ErrorBody),
        (status = 415, description = "Not `application/trickle-ice-sdpfrag`", body = classroom_protocol::ErrorBody),
        (status = 422, description = "An ICE restart, which is not supported", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn whep_patch(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = match player_of(&state.live.whep, &session, &headers) {
        Err(refusal) => refusal.response("join token"),
        Ok(player) => whip::trickle(player.ice_ufrag.as_deref(), &headers, &body),
    };
    whip::cors(response, SESSION_METHODS)
}

/// `OPTIONS` on a session: CORS preflight for DELETE and PATCH.
#[utoipa::path(
    options, path = "/whep/sessions/{session}", tag = "live",
    params(("session" = String, Path, description = "From the `Location` of the POST")),
    responses((status = 204, description = "CORS preflight"))
)]
pub async fn whep_session_options(Path(session): Path<String>) -> Response {
    whip::whip_session_options(Path(session)).await
}

/// The player `id`, if the request carries its token.
fn player_of(
    players: &WhepSessions,
    id: &str,
    headers: &HeaderMap,
) -> Result<Player, SessionRefusal> {
    let token = bearer(headers).ok_or(SessionRefusal::NoBearer)?;
    let player = (players.lock().get(id).cloned()).ok_or(SessionRefusal::UnknownSession)?;
    if !whip::constant_time_eq(player.token.as_bytes(), token.as_bytes()) {
        return Err(SessionRefusal::WrongBearer);
    }
    Ok(player)
}

/// Keeps every player on its lesson's main view, and lets go of players whose peer is gone
/// (connection lost, lesson ended: the room's end closes nothing of theirs, so an ended
/// lesson's players are removed here) until the server stops.
pub async fn follow(
    players: Arc<WhepSessions>,
    rooms: Weak<Rooms>,
    media: MediaHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let Some(rooms) = rooms.upgrade() else { return };
        let mut changes = Vec::new();
        let mut ended = Vec::new();
        {
            let mut sessions = players.lock();
            sessions.retain(|_, p| {
                let alive = media.peer_worker(p.peer).is_some();
                if alive && rooms.lesson_ended(p.lesson) {
                    ended.push(p.peer);
                    return false;
                }
                alive
            });
            let mut views: HashMap<LessonId, Vec<(PeerId, Mid)>> = HashMap::new();
            for player in sessions.values_mut() {
                let view = views.entry(player.lesson).or_insert_with(|| {
                    main_view(&rooms.publishers(&RoomName::for_lesson(player.lesson)))
                });
                if *view != player.pins {
                    player.pins = view.clone();
                    changes.push((player.peer, view.clone()));
                }
            }
        }
        for peer in ended {
            let _ = media.remove_peer(peer).await;
        }
        for (peer, pins) in changes {
            let _ = media.set_pins(peer, pins).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn publisher(peer: u64, role: ParticipantRole, sources: &[(&str, TrackSource)]) -> Publisher {
        Publisher {
            peer: PeerId(peer),
            role,
            sources: sources
                .iter()
                .map(|(mid, s)| ((*mid).to_owned(), *s))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn pins(list: &[(u64, &str)]) -> Vec<(PeerId, Mid)> {
        list.iter()
            .map(|(p, m)| (PeerId(*p), Mid::from(*m)))
            .collect()
    }

    #[test]
    fn the_teachers_camera_and_voice_are_the_main_view() {
        let student = publisher(
            1,
            ParticipantRole::Student,
            &[("0", TrackSource::Microphone), ("1", TrackSource::Camera)],
        );
        let teacher = publisher(
            2,
            ParticipantRole::Teacher,
            &[("0", TrackSource::Microphone), ("1", TrackSource::Camera)],
        );
        assert_eq!(
            main_view(&[student.clone(), teacher.clone()]),
            pins(&[(2, "1"), (2, "0")])
        );
        assert_eq!(main_view(&[student]), pins(&[(1, "1"), (1, "0")]));
        assert!(main_view(&[]).is_empty());
    }

    #[test]
    fn a_screen_share_wins_and_keeps_the_teachers_voice() {
        let teacher = publisher(
            2,
            ParticipantRole::Teacher,
            &[
                ("0", TrackSource::Microphone),
                ("1", TrackSource::Camera),
                ("2", TrackSource::Screen),
            ],
        );
        assert_eq!(main_view(&[teacher]), pins(&[(2, "2"), (2, "0")]));
    }

    #[test]
    fn an_encoder_brings_its_own_audio_and_the_teachers_voice_follows() {
        let encoder = publisher(
            5,
            ParticipantRole::Teacher,
            &[("0", TrackSource::Encoder), ("1", TrackSource::Encoder)],
        );
        let teacher = publisher(
            2,
            ParticipantRole::Teacher,
            &[("0", TrackSource::Microphone), ("1", TrackSource::Camera)],
        );
        assert_eq!(
            main_view(&[teacher, encoder]),
            pins(&[(5, "0"), (5, "1"), (2, "0")])
        );
    }
}
