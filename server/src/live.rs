//! Live lessons: the glue between signaling and the rest of the server. Join tokens are
//! checked with the API's token secret and their holders against the database, what rooms
//! report (a lesson went live or ended, a user removed) is written to the database, changes of
//! access the API stores reach the rooms ([`deliver_access_changes`]), and signaling's media
//! port is the SFU's driver: [`SfuPort`]
//! carries signaling's commands to it and [`relay_media_events`] carries its events back to
//! the rooms, which relay them to the peers' WebSockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use classroom_courses::Store;
use classroom_courses::api::error::ApiError;
use classroom_courses::auth::{TokenError, TokenIssuer};
use classroom_courses::model::DocumentState;
use classroom_courses::model::LessonEvent;
use classroom_media::driver::{CommandError, MediaHandle};
use classroom_media::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, MediaEvent, TrackKind, UnknownPeer,
    VideoSizeError,
};
use classroom_protocol::signal::{ConnectionQuality, MediaKind};
use classroom_protocol::{AccessChange, JoinClaims, LessonId, RoomName};
use classroom_signaling::media::MediaFuture;
use classroom_signaling::{
    AdmitError, DocumentCheck, InvalidToken, LessonEffect, MediaError, MediaNotice, MediaPort,
    PeerAccess, PeerId, RoomEvent, Rooms, TokenVerifier,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::events::Overflow;
use crate::metrics::Metrics;

/// Checks join tokens against the server's secret and the current time, and their holders
/// against the database.
pub struct JoinTokens {
    pub tokens: TokenIssuer,
    pub store: Store,
    /// Several nodes: who holds each lesson's room (`None`: one node, every room is here).
    pub placement: Option<Arc<crate::cluster::placement::RedisPlacement>>,
    /// Several nodes with `cluster.home_capacity`: this node serves rooms whose home is
    /// another node, relaying their participants' signaling there.
    pub edges: Option<Arc<crate::cluster::edge::EdgeLinks>>,
}

impl TokenVerifier for JoinTokens {
    fn verify(&self, token: &str) -> Result<JoinClaims, InvalidToken> {
        self.tokens
            .verify_join(token, OffsetDateTime::now_utc())
            .map_err(|e| match e {
                TokenError::Invalid => InvalidToken::Malformed,
                TokenError::Expired => InvalidToken::Expired,
                TokenError::WrongAudience => InvalidToken::WrongAudience,
            })
    }

    fn admit<'a>(&'a self, claims: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>> {
        Box::pin(async move {
            let user = claims.user().ok_or(AdmitError::Denied(
                classroom_protocol::AccessDenied::NotAMember,
            ))?;
            let admitted = self
                .store
                .admission(user, claims.lesson, claims.course, claims.role)
                .await;
            match admitted {
                Ok(verdict) => verdict.map_err(AdmitError::Denied)?,
                Err(e) => {
                    tracing::warn!(%user, lesson = %claims.lesson, error = %e, "cannot check a join against the database");
                    return Err(AdmitError::Unavailable);
                }
            }
            // Several nodes: the room opens here only if this node holds (or takes) its lease.
            match &self.placement {
                Some(placement) if !placement.claim(claims.lesson).await => {
                    Err(AdmitError::ElsewhereNode)
                }
                _ => Ok(()),
            }
        })
    }

    fn home_link<'a>(
        &'a self,
        claims: &'a JoinClaims,
    ) -> MediaFuture<'a, Option<classroom_signaling::HomeLink>> {
        Box::pin(async move {
            match &self.edges {
                Some(edges) => edges.open(claims.lesson).await,
                None => None,
            }
        })
    }

    fn document_pages(
        &self,
        course: classroom_protocol::CourseId,
        document: classroom_protocol::DocumentId,
    ) -> MediaFuture<'_, Result<DocumentCheck, AdmitError>> {
        Box::pin(async move {
            match self.store.document(document).await {
                Ok(doc) => Ok(match (doc.course_id == course, doc.state, doc.pages) {
                    (true, DocumentState::Ready, Some(pages)) => {
                        DocumentCheck::Pages(u32::try_from(pages).unwrap_or(u32::MAX))
                    }
                    _ => DocumentCheck::Unknown,
                }),
                Err(classroom_courses::error::StoreError::NotFound(_)) => {
                    Ok(DocumentCheck::Unknown)
                }
                Err(e) => {
                    tracing::warn!(%document, error = %e, "cannot check a document against the database");
                    Err(AdmitError::Unavailable)
                }
            }
        })
    }
}

/// Delivers the changes of access the API stores (accounts disabled, students unenrolled,
/// lessons cancelled, removed users let back in) to the live rooms, until the API is gone.
/// The encoders publishing into those rooms are checked again too (`encoders`: the ingest,
/// when it runs, and the store that says who may stream).
pub async fn deliver_access_changes(
    rooms: Arc<Rooms>,
    encoders: Option<(classroom_rtmp::IngestHandle, Store)>,
    whip: (Arc<crate::whip::WhipSessions>, MediaHandle, Store),
    mut changes: mpsc::UnboundedReceiver<AccessChange>,
) {
    while let Some(change) = changes.recv().await {
        tracing::debug!(?change, "access changed");
        rooms.access_changed(change).await;
        if let Some((ingest, store)) = &encoders {
            crate::rtmp::follow_access_change(ingest, store, &change).await;
        }
        if !matches!(change, AccessChange::Readmitted { .. }) {
            let (sessions, media, store) = &whip;
            crate::whip::follow_access_change(sessions, &rooms, media, store).await;
        }
    }
}

/// Signaling's media port, served by the SFU. Signaling's peer ids are the SFU's.
#[derive(Clone)]
pub struct SfuPort {
    pub media: MediaHandle,
    pub joins: Arc<JoinClock>,
}

impl SfuPort {
    pub fn new(media: MediaHandle, joins: Arc<JoinClock>) -> Self {
        SfuPort { media, joins }
    }
}

/// When each media peer's WebSocket opened, until the SFU sends it its first media packet:
/// the join time is the difference. Entries live from the peer's offer to its first packet
/// or its departure, so the map holds at most the peers still joining.
#[derive(Debug, Default)]
pub struct JoinClock(Mutex<HashMap<PeerId, Instant>>);

impl JoinClock {
    fn started(&self, peer: PeerId, opened: Instant) {
        if let Ok(mut joins) = self.0.lock() {
            joins.insert(peer, opened);
        }
    }

    /// How long the join of `peer` took, ending at `at`; once.
    fn finished(&self, peer: PeerId, at: Instant) -> Option<std::time::Duration> {
        let opened = self.0.lock().ok()?.remove(&peer)?;
        Some(at.saturating_duration_since(opened))
    }

    fn forget(&self, peer: PeerId) {
        if let Ok(mut joins) = self.0.lock() {
            joins.remove(&peer);
        }
    }
}

fn stopped<E>(error: CommandError<E>) -> Result<E, MediaError> {
    match error {
        CommandError::Stopped => {
            tracing::error!("the media driver has stopped");
            Err(MediaError::Unavailable)
        }
        CommandError::Failed(e) => Ok(e),
    }
}

/// Removing or changing a peer the SFU no longer has leaves nothing to do.
fn ignore_gone(peer: PeerId, what: &str, result: Result<(), CommandError<UnknownPeer>>) {
    match result {
        Ok(()) | Err(CommandError::Failed(UnknownPeer(_))) => {}
        Err(CommandError::Stopped) => tracing::error!(%peer, what, "the media driver has stopped"),
    }
}

impl MediaPort for SfuPort {
    fn add_peer<'a>(
        &'a self,
        peer: PeerId,
        room: &'a RoomName,
        offer: String,
        access: PeerAccess,
    ) -> MediaFuture<'a, Result<String, MediaError>> {
        Box::pin(async move {
            let added = self
                .media
                .add_peer_with(peer, room.clone(), offer, access.publish)
                .await;
            let answer = match added {
                Ok(answer) => answer,
                Err(e) => {
                    return Err(match stopped(e)? {
                        AddPeerError::InvalidSdp(m) | AddPeerError::OfferRejected(m) => {
                            MediaError::InvalidSdp(m)
                        }
                        AddPeerError::DuplicatePeer(p) => {
                            tracing::error!(peer = %p, "signaling reused a media peer id");
                            MediaError::Unavailable
                        }
                        // Only local publishers name tracks.
                        AddPeerError::DuplicateTrack(_) => MediaError::Unavailable,
                    });
                }
            };
            // Before the client has the answer, so before it can send anything.
            if access.audio_muted {
                ignore_gone(peer, "mute", self.media.set_audio_muted(peer, true).await);
            }
            if let Some(opened) = access.connection_opened {
                self.joins.started(peer, opened);
            }
            Ok(answer)
        })
    }

    fn accept_offer(
        &self,
        peer: PeerId,
        offer: String,
    ) -> MediaFuture<'_, Result<String, MediaError>> {
        Box::pin(async move {
            self.media.accept_offer(peer, offer).await.or_else(|e| {
                Err(match stopped(e)? {
                    AcceptOfferError::UnknownPeer(_) => MediaError::NoPeer,
                    AcceptOfferError::InvalidSdp(m) | AcceptOfferError::OfferRejected(m) => {
                        MediaError::InvalidSdp(m)
                    }
                })
            })
        })
    }

    fn accept_answer(
        &self,
        peer: PeerId,
        answer: String,
    ) -> MediaFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            self.media.accept_answer(peer, answer).await.or_else(|e| {
                Err(match stopped(e)? {
                    AcceptAnswerError::UnknownPeer(_) => MediaError::NoPeer,
                    AcceptAnswerError::NoPendingOffer => MediaError::NoPendingOffer,
                    AcceptAnswerError::InvalidSdp(m) | AcceptAnswerError::AnswerRejected(m) => {
                        MediaError::InvalidSdp(m)
                    }
                })
            })
        })
    }

    fn remove_peer(&self, peer: PeerId) -> MediaFuture<'_, ()> {
        Box::pin(async move { ignore_gone(peer, "remove", self.media.remove_peer(peer).await) })
    }

    fn set_publish_allowed(&self, peer: PeerId, allowed: bool) -> MediaFuture<'_, ()> {
        Box::pin(async move {
            ignore_gone(
                peer,
                "publish",
                self.media.set_publish_allowed(peer, allowed).await,
            )
        })
    }

    fn set_audio_muted(&self, peer: PeerId, muted: bool) -> MediaFuture<'_, ()> {
        Box::pin(
            async move { ignore_gone(peer, "mute", self.media.set_audio_muted(peer, muted).await) },
        )
    }

    fn set_voice_broadcast(&self, peer: PeerId, lesson: Option<LessonId>) -> MediaFuture<'_, ()> {
        Box::pin(async move {
            ignore_gone(
                peer,
                "voice",
                self.media.set_voice_broadcast(peer, lesson).await,
            )
        })
    }

    fn set_video_size(
        &self,
        peer: PeerId,
        mid: classroom_media::Mid,
        height: u32,
    ) -> MediaFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            self.media
                .set_video_size(peer, mid, height)
                .await
                .or_else(|e| {
                    Err(match stopped(e)? {
                        VideoSizeError::UnknownPeer(_) => MediaError::NoPeer,
                        VideoSizeError::UnknownMid(mid) => MediaError::UnknownMid(mid),
                    })
                })
        })
    }
}

/// Relays what the SFU reports to the rooms of the peers concerned, and records what is for
/// the metrics, until the SFU stops.
///
/// On an edge node (`edge`), what concerns the peers a home's room drives goes to that home.
pub async fn relay_media_events(
    rooms: Arc<Rooms>,
    mut events: mpsc::UnboundedReceiver<MediaEvent>,
    metrics: Arc<Metrics>,
    joins: Arc<JoinClock>,
    edge: Option<Arc<crate::cluster::edge_media::EdgeMedia>>,
) {
    while let Some(event) = events.recv().await {
        let notice = match event {
            MediaEvent::MediaStarted { peer: p, at } => {
                if let Some(elapsed) = joins.finished(p, at) {
                    metrics.media_join_completed(elapsed);
                }
                continue;
            }
            MediaEvent::SubscriberStats { stats, .. } => {
                metrics.subscriber_stats_observed(stats);
                continue;
            }
            MediaEvent::OfferCreated { peer: p, offer } => MediaNotice::Offer {
                peer: p,
                sdp: offer,
            },
            MediaEvent::SubscriptionStarted {
                subscriber,
                subscriber_mid,
                publisher,
                publisher_mid,
                kind,
            } => MediaNotice::TrackStarted {
                subscriber,
                mid: subscriber_mid,
                publisher,
                publisher_mid,
                kind: match kind {
                    TrackKind::Audio => MediaKind::Audio,
                    TrackKind::Video => MediaKind::Video,
                },
            },
            MediaEvent::SubscriptionEnded {
                subscriber,
                subscriber_mid,
                ..
            } => MediaNotice::TrackEnded {
                subscriber,
                mid: subscriber_mid,
            },
            MediaEvent::PeerDisconnected { peer: p } => {
                joins.forget(p);
                MediaNotice::PeerGone { peer: p }
            }
            MediaEvent::QualityChanged { peer: p, quality } => MediaNotice::Quality {
                peer: p,
                quality: match quality {
                    classroom_media::ConnectionQuality::Excellent => ConnectionQuality::Excellent,
                    classroom_media::ConnectionQuality::Good => ConnectionQuality::Good,
                    classroom_media::ConnectionQuality::Poor => ConnectionQuality::Poor,
                    classroom_media::ConnectionQuality::Lost => ConnectionQuality::Lost,
                },
            },
            MediaEvent::ActiveSpeakers { room, speakers } => MediaNotice::Speakers {
                room,
                peers: speakers,
            },
            other => {
                tracing::debug!(event = ?other, "media event");
                continue;
            }
        };
        if edge.as_ref().is_some_and(|edge| edge.forward(&notice)) {
            continue;
        }
        rooms.deliver_media(notice).await;
    }
}

/// What the `/ws` route needs.
#[derive(Clone)]
pub struct LiveState {
    pub rooms: Arc<Rooms>,
    pub verifier: Arc<dyn TokenVerifier>,
    /// The SFU, for its counters.
    pub media: MediaHandle,
    /// The recorder's counters.
    pub recorder: Arc<classroom_recorder::RecorderStats>,
    /// The RTMP ingest, for its counters; `None` when turned off.
    pub ingest: Option<classroom_rtmp::IngestHandle>,
    /// The WHIP encoders publishing on this node.
    pub whip: Arc<crate::whip::WhipSessions>,
    /// The WHEP players watching on this node.
    pub whep: Arc<crate::whep::WhepSessions>,
    /// Who may open `/ws` from a browser (`http.public_origins`).
    pub origins: Arc<crate::origin::AllowedOrigins>,
    /// Several nodes: pages served by the other nodes may open `/ws` here too.
    pub cluster: Option<crate::cluster::ClusterHandle>,
    /// Several nodes: the edges' signaling links this node accepts, as a home.
    pub link_home: Option<Arc<crate::cluster::link::home::LinkHome>>,
    /// Several nodes: the media of the participants this node serves for other nodes' rooms.
    pub edge_media: Option<Arc<crate::cluster::edge_media::EdgeMedia>>,
}

impl LiveState {
    /// The cluster as this node sees it, with its node media links; `None` on a single node.
    pub fn cluster_status(&self) -> Option<crate::cluster::ClusterStatus> {
        let mut status = self.cluster.as_ref()?.status();
        if let Some(home) = &self.link_home {
            status.node_links.add(home.port.node_link_stats());
        }
        if let Some(edge) = &self.edge_media {
            status.node_links.add(edge.node_link_stats());
        }
        Some(status)
    }
}

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveState")
            .field("open_rooms", &self.rooms.open_rooms())
            .finish()
    }
}

/// The lessons store waits for room for lesson events: each changes a lesson's state in the
/// database (live, ended), which nothing else would repair; and for closed polls, whose
/// answers exist nowhere else. The rest it only logs.
pub const LESSONS_OVERFLOW: Overflow =
    Overflow::WaitFor(|e| matches!(e, RoomEvent::Lesson(_) | RoomEvent::PollClosed { .. }));

/// Applies room events to the database until the dispatcher stops.
pub async fn apply_room_events(
    store: Store,
    mut events: mpsc::Receiver<RoomEvent>,
    webhooks: crate::webhook::WebhookEvents,
) {
    while let Some(event) = events.recv().await {
        match event {
            RoomEvent::Lesson(LessonEffect::UserRemoved { lesson, user, by }) => {
                let now = OffsetDateTime::now_utc();
                match store.remove_from_lesson(lesson, user, by, now).await {
                    Ok(()) => tracing::info!(%lesson, %user, %by, "removed from the lesson"),
                    // The room refuses them until it closes; after that they could come back.
                    Err(e) => {
                        tracing::error!(%lesson, %user, error = %e, "could not store a removal")
                    }
                }
            }
            RoomEvent::Lesson(effect) => {
                let (lesson, transition) = match effect {
                    LessonEffect::WentLive(lesson) => (lesson, LessonEvent::GoLive),
                    LessonEffect::Ended(lesson) => (lesson, LessonEvent::End),
                    LessonEffect::UserRemoved { .. } => continue,
                };
                match store
                    .transition_lesson(lesson, transition, OffsetDateTime::now_utc())
                    .await
                {
                    Ok(l) => {
                        tracing::info!(%lesson, state = l.state.as_str(), "lesson state changed");
                        // lesson.ended waits for the attendance (crate::attendance).
                        if matches!(transition, LessonEvent::GoLive) {
                            webhooks.lesson_started(lesson).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%lesson, error = %e, "could not record the lesson's state")
                    }
                }
            }
            RoomEvent::Media { room, effect } => {
                tracing::debug!(%room, ?effect, "media change");
            }
            RoomEvent::PollClosed { lesson, poll } => {
                let closed_at = OffsetDateTime::now_utc();
                match store.save_poll(lesson, &poll, closed_at).await {
                    Ok(id) => {
                        tracing::info!(%lesson, poll = id, answers = poll.answers.len(), "poll stored")
                    }
                    Err(e) => {
                        tracing::error!(%lesson, error = %e, "could not store a poll's results")
                    }
                }
            }
            // The recorder's (crate::recorder).
            RoomEvent::Recording { .. } | RoomEvent::Activity { .. } => {}
            // Attendance's (crate::attendance).
            RoomEvent::Attendance { .. } => {}
        }
    }
}

/// The signaling WebSocket's read buffer, per connection.
const WS_READ_BUFFER: usize = 8 * 1024;

/// The signaling WebSocket. Send `{"v":1,"type":"join","token":"<join token>"}` first; every
/// message is documented in docs/protocol.md.
#[utoipa::path(
    get, path = "/ws", tag = "live",
    responses(
        (status = 101, description = "Switching to the signaling WebSocket protocol (see docs/protocol.md)"),
        (status = 400, description = "Not a WebSocket upgrade request"),
        (status = 403, description = "A browser page of another site (its `Origin` is not in `http.public_origins`)", body = classroom_protocol::ErrorBody),
    )
)]
pub async fn signaling_socket(
    State(live): State<LiveState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Refused before the upgrade: nothing of the signaling protocol reaches another site.
    let origin = headers.get(header::ORIGIN);
    let from_a_node = || {
        let origin = origin
            .and_then(|o| o.to_str().ok())
            .and_then(|o| crate::origin::PublicOrigin::parse(o).ok());
        origin.is_some_and(|o| {
            live.cluster
                .as_ref()
                .is_some_and(|c| c.node_origins().contains(&o))
        })
    };
    if !live.origins.allows(origin) && !from_a_node() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this page's site may not open the classroom's WebSocket; \
             open the classroom from the school's own address",
        )
        .into_response();
    }
    let hard_limit = live.rooms.config().max_message_bytes.saturating_mul(4);
    upgrade
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        // Signaling messages are small: an 8 KiB read buffer grows for a longer one, where
        // tungstenite's default of 128 KiB is zero-filled on the first read, per connection.
        // Messages go out as they are sent (each send flushes anyway).
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            classroom_signaling::run_session(socket, live.rooms, live.verifier)
        })
}
