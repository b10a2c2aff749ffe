//! WHIP ingest (RFC 9725): OBS 30+, GStreamer or a browser publishes into a lesson over
//! WebRTC with the lesson's stream key as its bearer token.
//!
//! - `POST /whip` with an SDP offer (`application/sdp`) and `Authorization: Bearer <stream
//!   key>`: the encoder enters the lesson's room exactly as an RTMP encoder does (a participant
//!   of its own with the source `encoder`, the lesson goes live, moderators hear `encoder`
//!   news) and its WebRTC peer joins the SFU, whose tracks reach students, the recorder and
//!   the restream through the one forwarding path. `201 Created` with the SDP answer and the
//!   session's `Location`.
//! - `DELETE /whip/sessions/{session}` ends it. `PATCH` takes trickle candidates and answers
//!   `204` without using them (the SFU is ICE-lite: it learns the encoder's addresses from its
//!   connectivity checks), and refuses an ICE restart with `422`, as RFC 9725 §4.3.1 says for
//!   a session that trickles but does not restart.
//! - One encoder per key: while an RTMP or WHIP encoder publishes to the lesson, another gets
//!   `409 Conflict` (and teachers an `encoder` refusal), as the RTMP ingest does.
//! - `OPTIONS` and CORS headers let browser publishers on other origins use it; no cookies
//!   are involved (the bearer is explicit), so any origin may.
//!
//! The session URL is unguessable (128 random bits) and must also carry the stream key, so
//! that a leaked URL alone cannot stop a lesson's stream.

pub mod sdp;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use classroom_courses::Store;
use classroom_courses::api::error::ApiError;
use classroom_media::driver::{CommandError, MediaHandle};
use classroom_media::{AddPeerError, PeerId};
use classroom_protocol::signal::EncoderState;
use classroom_protocol::{LessonId, RoomName};
use classroom_signaling::room::JoinError;
use classroom_signaling::{EncoderError, Rooms};
use sdp::{MediaKind, OfferSummary};

use crate::http::AppState;

/// The largest offer taken: a browser's offer with simulcast and every codec is about 10 KB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Why a second encoder on a key is refused, over RTMP or WHIP (the RTMP ingest's words).
pub const ENCODER_IN_USE: &str = "another encoder is already streaming to this lesson with this \
     key; stop it first, or rotate the stream key to cut it off";

/// The WHIP sessions of this node, by their id.
#[derive(Debug, Default)]
pub struct WhipSessions {
    sessions: Mutex<HashMap<String, Session>>,
    /// Held while an encoder is admitted, so that two offers for one key cannot both pass the
    /// one-encoder check.
    admitting: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Session {
    lesson: LessonId,
    peer: PeerId,
    /// The stream key the session was opened with: DELETE and PATCH must present it.
    key: String,
    ice_ufrag: Option<String>,
}

impl WhipSessions {
    /// Whether a WHIP encoder publishes to `lesson` now: it has a session whose peer the SFU
    /// still has (a session whose connection failed is forgotten here).
    pub fn publishing(&self, lesson: LessonId, media: &MediaHandle) -> bool {
        let mut sessions = self.lock();
        sessions.retain(|_, s| media.peer_worker(s.peer).is_some());
        sessions.values().any(|s| s.lesson == lesson)
    }

    /// How many WHIP encoders publish now.
    pub fn encoders(&self, media: &MediaHandle) -> usize {
        let mut sessions = self.lock();
        sessions.retain(|_, s| media.peer_worker(s.peer).is_some());
        sessions.len()
    }

    /// The lessons WHIP encoders publish to (for access re-checks).
    pub fn lessons(&self) -> Vec<LessonId> {
        self.lock().values().map(|s| s.lesson).collect()
    }

    /// Forgets the sessions of `lesson`; returns their peers.
    pub fn end_lesson(&self, lesson: LessonId) -> Vec<PeerId> {
        let mut sessions = self.lock();
        let ended: Vec<String> = (sessions.iter())
            .filter(|(_, s)| s.lesson == lesson)
            .map(|(id, _)| id.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|id| sessions.remove(&id))
            .map(|s| s.peer)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// CORS for browser publishers and players (RFC 9725 §4.2: the endpoint answers `OPTIONS`
/// and exposes `Location` and `Link` to scripts).
pub fn cors(mut response: Response, methods: &'static str) -> Response {
    let headers = response.headers_mut();
    let pairs: [(HeaderName, &'static str); 4] = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, methods),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, If-Match, ETag",
        ),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Location, Link, ETag, Accept-Patch, Accept-Post",
        ),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

pub(crate) const ENDPOINT_METHODS: &str = "POST, OPTIONS";
pub(crate) const SESSION_METHODS: &str = "PATCH, DELETE, OPTIONS";

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// 401 with the `WWW-Authenticate` challenge RFC 9110 asks for.
pub fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::unauthenticated("unauthorized", message.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The offer in a body, or why it is none: the content type must be `application/sdp`, the
/// body UTF-8 SDP with media.
pub fn read_offer(headers: &HeaderMap, body: &Bytes) -> Result<(String, OfferSummary), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the SDP offer with `Content-Type: application/sdp`",
        ));
    }
    let offer = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("invalid_sdp", "the offer is not UTF-8 text"))?;
    let summary =
        sdp::summarize(offer).map_err(|e| ApiError::bad_request("invalid_sdp", e.to_string()))?;
    Ok((offer.to_owned(), summary))
}

/// `201 Created` with the SDP answer and the session's location.
pub fn created(answer: String, location: &str, methods: &'static str) -> Response {
    let mut response = (StatusCode::CREATED, answer).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    cors(response, methods)
}

/// The SFU's refusal of an offer, for the client.
pub fn media_refusal(error: CommandError<AddPeerError>) -> ApiError {
    match error {
        CommandError::Failed(AddPeerError::InvalidSdp(e) | AddPeerError::OfferRejected(e)) => {
            ApiError::bad_request("invalid_sdp", format!("the offer cannot be answered: {e}"))
        }
        CommandError::Failed(e) => {
            tracing::error!(error = %e, "the SFU refused a peer");
            media_unavailable()
        }
        CommandError::Stopped => media_unavailable(),
    }
}

fn media_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "media_unavailable",
        "the media server is not running; try again later",
    )
}

/// Starts a WHIP session: the encoder's offer in, the SFU's answer out.
#[utoipa::path(
    post, path = "/whip", tag = "live",
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/sdp", description = "The encoder's SDP offer: audio and video it sends"),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session to DELETE", body = String, content_type = "application/sdp"),
        (status = 400, description = "Not an SDP offer, or one without video", body = classroom_protocol::ErrorBody),
        (status = 401, description = "No stream key, or not one that opens a lesson", body = classroom_protocol::ErrorBody),
        (status = 403, description = "The lesson has ended", body = classroom_protocol::ErrorBody),
        (status = 409, description = "Another encoder publishes with this key", body = classroom_protocol::ErrorBody),
        (status = 413, description = "The offer is too large", body = classroom_protocol::ErrorBody),
        (status = 415, description = "Not `application/sdp`", body = classroom_protocol::ErrorBody),
        (status = 503, description = "The media server is not running", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn whip_publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    cors(publish(&state, &headers, &body).await, ENDPOINT_METHODS)
}

async fn publish(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(key) = bearer(headers) else {
        return unauthorized("send the lesson's stream key as `Authorization: Bearer <key>`");
    };
    let store = &state.api.store;
    let lesson = match store.lesson_for_stream_key(key).await {
        Ok(Some(lesson)) => lesson,
        Ok(None) => {
            return unauthorized(
                "this stream key opens no lesson (wrong key, rotated, or the lesson is over)",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not look up a stream key");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unreachable",
                "the server cannot check the stream key right now; try again in a moment",
            )
            .into_response();
        }
    };
    // The key first: whoever has none learns nothing about what the body should be.
    let (offer, summary) = match read_offer(headers, body) {
        Ok(offer) => offer,
        Err(e) => return e.into_response(),
    };
    if !summary.sends(MediaKind::Video) {
        return ApiError::bad_request("no_video", "the offer sends no video").into_response();
    }
    let live = &state.live;
    let whip = &live.whip;
    let _admitting = whip.admitting.lock().await;
    let rtmp_publishing = live
        .ingest
        .as_ref()
        .is_some_and(|i| i.publishing().contains(&lesson));
    if rtmp_publishing || whip.publishing(lesson, &live.media) {
        live.rooms
            .encoder_changed(
                lesson,
                EncoderState::Refused,
                Some(ENCODER_IN_USE.to_owned()),
            )
            .await;
        tracing::info!(%lesson, "WHIP publish refused: an encoder publishes");
        return ApiError::new(StatusCode::CONFLICT, "encoder_publishing", ENCODER_IN_USE)
            .into_response();
    }
    // An offer the SFU would refuse is refused before the room hears of an encoder (which
    // would make the lesson live).
    let checked = classroom_media::Sfu::check_offer(std::time::Instant::now(), &offer);
    if let Err(e) = checked {
        return media_refusal(CommandError::Failed(e)).into_response();
    }
    let mids = summary.sending.iter().map(|(mid, _)| mid.clone()).collect();
    let identity = crate::rtmp::encoder_identity(store, lesson).await;
    let peer = match live.rooms.encoder_started(lesson, identity, mids).await {
        Ok(peer) => peer,
        Err(e) => return encoder_refusal(&e).into_response(),
    };
    let room = RoomName::for_lesson(lesson);
    // Pinned to nothing: it publishes, and could not answer an offer of m-lines to receive.
    let added = live
        .media
        .add_pinned_peer(peer, room, offer, true, Some(Vec::new()))
        .await;
    match added {
        Ok(answer) => {
            let id = classroom_courses::auth::random_token(16);
            let session = Session {
                lesson,
                peer,
                key: key.to_owned(),
                ice_ufrag: summary.ice_ufrag,
            };
            whip.lock().insert(id.clone(), session);
            tracing::info!(%lesson, %peer, "WHIP encoder published");
            created(answer, &format!("/whip/sessions/{id}"), ENDPOINT_METHODS)
        }
        Err(e) => {
            // The participant entered for nothing: it leaves, and teachers hear why.
            let refusal = media_refusal(e);
            live.rooms
                .encoder_changed(lesson, EncoderState::Stopped, Some(refusal.message.clone()))
                .await;
            refusal.into_response()
        }
    }
}

fn encoder_refusal(error: &EncoderError) -> ApiError {
    match error {
        EncoderError::Refused(JoinError::LessonEnded) => {
            ApiError::forbidden("lesson_ended", "the lesson has ended")
        }
        EncoderError::Refused(JoinError::RoomFull(_)) => {
            ApiError::new(StatusCode::CONFLICT, "room_full", error.to_string())
        }
        EncoderError::Refused(_) => ApiError::forbidden("forbidden", error.to_string()),
        EncoderError::NoMedia | EncoderError::RoomClosed => media_unavailable(),
    }
}

/// `OPTIONS` on the endpoint: CORS preflight, and what it accepts.
#[utoipa::path(
    options, path = "/whip", tag = "live",
    responses((status = 204, description = "CORS preflight; `Accept-Post: application/sdp`"))
)]
pub async fn whip_options() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static("application/sdp"),
    );
    cors(response, ENDPOINT_METHODS)
}

/// Ends a WHIP session: the encoder leaves the lesson.
#[utoipa::path(
    delete, path = "/whip/sessions/{session}", tag = "live",
    security(("bearer" = [])),
    params(("session" = String, Path, description = "From the `Location` of the POST")),
    responses(
        (status = 200, description = "Ended"),
        (status = 401, description = "No stream key, or not the session's", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such session (or it ended)", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn whip_delete(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Response {
    let response = match find_session(&state.live.whip, &session, &headers) {
        Err(refusal) => refusal.response("stream key"),
        Ok(found) => {
            state.live.whip.lock().remove(&session);
            let live = &state.live;
            // The participant leaves, and the room removes its peer with it.
            live.rooms
                .encoder_changed(found.lesson, EncoderState::Stopped, None)
                .await;
            let _ = live.media.remove_peer(found.peer).await;
            tracing::info!(lesson = %found.lesson, peer = %found.peer, "WHIP encoder stopped");
            StatusCode::OK.into_response()
        }
    };
    cors(response, SESSION_METHODS)
}

/// Trickle ICE for a WHIP session.
#[utoipa::path(
    patch, path = "/whip/sessions/{session}", tag = "live",
    security(("bearer" = [])),
    params(("session" = String, Path, description = "From the `Location` of the POST")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses(
        (status = 204, description = "Candidates taken (the server is ICE-lite and needs none)"),
        (status = 401, description = "No stream key, or not the session's", body = classroom_protocol::ErrorBody),
        (status = 404, description = "No such session", body = classroom_protocol::ErrorBody),
        (status = 415, description = "Not `application/trickle-ice-sdpfrag`", body = classroom_protocol::ErrorBody),
        (status = 422, description = "An ICE restart, which is not supported: start a new session", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn whip_patch(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = match find_session(&state.live.whip, &session, &headers) {
        Err(refusal) => refusal.response("stream key"),
        Ok(found) => trickle(found.ice_ufrag.as_deref(), &headers, &body),
    };
    cors(response, SESSION_METHODS)
}

/// `OPTIONS` on a session: CORS preflight for DELETE and PATCH.
#[utoipa::path(
    options, path = "/whip/sessions/{session}", tag = "live",
    params(("session" = String, Path, description = "From the `Location` of the POST")),
    responses((status = 204, description = "CORS preflight"))
)]
pub async fn whip_session_options(Path(_session): Path<String>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        HeaderName::from_static("accept-patch"),
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    cors(response, SESSION_METHODS)
}

/// A trickle PATCH on a session whose offer had `ice_ufrag`: candidates are taken (and not
/// needed), a restart (another ufrag) is refused.
pub fn trickle(ice_ufrag: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/trickle-ice-sdpfrag")
    {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send trickle candidates as `application/trickle-ice-sdpfrag`",
        )
        .into_response();
    }
    let fragment = String::from_utf8_lossy(body);
    match sdp::fragment_ufrag(&fragment) {
        Some(ufrag) if Some(ufrag) != ice_ufrag => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ice_restart_unsupported",
            "ICE restarts are not supported: DELETE this session and POST a new offer",
        )
        .into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Why a request on a WHIP or WHEP session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    NoBearer,
    UnknownSession,
    WrongBearer,
}

impl SessionRefusal {
    /// The answer, naming what the session's bearer is (`credential`).
    pub fn response(self, credential: &str) -> Response {
        match self {
            SessionRefusal::NoBearer => unauthorized(&format!(
                "send the session's {credential} as `Authorization: Bearer <{credential}>`"
            )),
            SessionRefusal::UnknownSession => ApiError::not_found("session").into_response(),
            SessionRefusal::WrongBearer => {
                unauthorized(&format!("this is not the session's {credential}"))
            }
        }
    }
}

/// The session `id`, if the request carries its stream key.
fn find_session(
    sessions: &WhipSessions,
    id: &str,
    headers: &HeaderMap,
) -> Result<Session, SessionRefusal> {
    let key = bearer(headers).ok_or(SessionRefusal::NoBearer)?;
    let session = (sessions.lock().get(id).cloned()).ok_or(SessionRefusal::UnknownSession)?;
    if !constant_time_eq(session.key.as_bytes(), key.as_bytes()) {
        return Err(SessionRefusal::WrongBearer);
    }
    Ok(session)
}

/// Compares secrets without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Stops the WHIP encoders whose teacher may no longer stream (see
/// [`crate::rtmp::follow_access_change`]) or whose lesson ended.
pub async fn stop_lesson(
    sessions: &WhipSessions,
    rooms: &Rooms,
    media: &MediaHandle,
    lesson: LessonId,
) {
    let peers = sessions.end_lesson(lesson);
    if peers.is_empty() {
        return;
    }
    rooms
        .encoder_changed(lesson, EncoderState::Stopped, None)
        .await;
    for peer in peers {
        let _ = media.remove_peer(peer).await;
    }
}

/// Stops the WHIP encoder of each lesson that ends, until the dispatcher stops (it waits for
/// room for a lesson's end, as the RTMP ingest does: [`crate::rtmp::OVERFLOW`]).
pub async fn follow_lessons(
    sessions: std::sync::Arc<WhipSessions>,
    rooms: std::sync::Arc<Rooms>,
    media: MediaHandle,
    mut events: tokio::sync::mpsc::Receiver<classroom_signaling::RoomEvent>,
) {
    while let Some(event) = events.recv().await {
        if let classroom_signaling::RoomEvent::Lesson(classroom_signaling::LessonEffect::Ended(
            lesson,
        )) = event
        {
            stop_lesson(&sessions, &rooms, &media, lesson).await;
        }
    }
}

/// Re-checks the WHIP encoders' stream keys after an access change.
pub async fn follow_access_change(
    sessions: &WhipSessions,
    rooms: &Rooms,
    media: &MediaHandle,
    store: &Store,
) {
    for lesson in sessions.lessons() {
        if let Ok(false) = store.encoder_may_stream(lesson).await {
            tracing::info!(%lesson, "WHIP encoder stopped: its teacher may no longer stream");
            stop_lesson(sessions, rooms, media, lesson).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn bearer_tokens() {
        let auth = |v: &str| headers(&[(header::AUTHORIZATION, v)]);
        assert_eq!(bearer(&auth("Bearer 3-abc")), Some("3-abc"));
        assert_eq!(bearer(&auth("bearer 3-abc ")), Some("3-abc"));
        assert_eq!(bearer(&auth("Basic Zm9v")), None);
        assert_eq!(bearer(&auth("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn trickle_takes_candidates_and_refuses_restarts() {
        let frag = headers(&[(header::CONTENT_TYPE, "application/trickle-ice-sdpfrag")]);
        let candidates = Bytes::from_static(
            b"a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
              a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n",
        );
        assert_eq!(
            trickle(Some("abcd"), &frag, &candidates).status(),
            StatusCode::NO_CONTENT
        );
        let restart = Bytes::from_static(b"a=ice-ufrag:efgh\r\na=ice-pwd:y\r\n");
        assert_eq!(
            trickle(Some("abcd"), &frag, &restart).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let json = headers(&[(header::CONTENT_TYPE, "application/json")]);
        assert_eq!(
            trickle(Some("abcd"), &json, &candidates).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn offers_need_the_sdp_content_type() {
        let sdp = headers(&[(header::CONTENT_TYPE, "application/sdp")]);
        let body = Bytes::from_static(b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n");
        assert!(read_offer(&sdp, &body).is_ok());
        let text = headers(&[(header::CONTENT_TYPE, "text/plain")]);
        let refused = read_offer(&text, &body).expect_err("refused");
        assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let garbage = Bytes::from_static(&[0xff, 0xfe]);
        let refused = read_offer(&sdp, &garbage).expect_err("refused");
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    }
}
