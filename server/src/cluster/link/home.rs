//! The home's end of a node link: `GET /cluster/link` checks the calling node's credential
//! before the upgrade (a wrong one is `401 node_unauthenticated` and changes nothing), then
//! runs the link, serving each virtual connection the edge opens with the signaling session a
//! browser's WebSocket gets ([`classroom_signaling::serve`]). The link's end is each
//! connection's end: the sessions go as dropped connections (the room's reconnect grace
//! applies).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use classroom_courses::api::error::ApiError;
use classroom_protocol::JoinClaims;
use classroom_signaling::media::MediaFuture;
use classroom_signaling::{AdmitError, DocumentCheck, InvalidToken, Rooms, TokenVerifier};
use futures_util::{SinkExt, StreamExt};

use super::auth::ClusterSecret;
use super::frame::ConnId;
use super::mux::{Conn, Inbound, Link, Wire, WireOut};
use crate::cluster::registry::NodeId;

/// What a home needs to accept links.
pub struct LinkHome {
    pub this: NodeId,
    pub secret: ClusterSecret,
    /// `cluster.link_max_participants`.
    pub max_conns: usize,
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The node link's WebSocket (node to node; not part of the public API, so not in the
/// OpenAPI document). 404 on a node without a cluster.
pub async fn accept(
    State(live): State<crate::live::LiveState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(home) = live.link_home.clone() else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response();
    };
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let from = match home.secret.verify(credential, &home.this, unix_ms()) {
        Ok(from) => from,
        Err(why) => {
            tracing::warn!(reason = %why, "cluster: refused a node link");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "node_unauthenticated",
                "this node link's credential is wrong or expired: every node of a cluster needs \
                 the same cluster.secret (and clocks within seconds of each other)",
            )
            .into_response();
        }
    };
    let rooms = live.rooms.clone();
    let verifier: Arc<dyn TokenVerifier> = Arc::new(NoRelay(live.verifier.clone()));
    let limit = rooms.config().max_message_bytes.saturating_mul(4) + super::FRAME_OVERHEAD;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            tracing::info!(node = %from, "cluster: a node link opened");
            let (_, driver) = Link::new(home.max_conns);
            let (sink, stream) = socket.split();
            let incoming = stream.map(|message| match message {
                Ok(Message::Binary(bytes)) => Wire::Frame(bytes.to_vec()),
                Ok(Message::Close(_)) | Err(_) => Wire::End,
                Ok(_) => Wire::Alive,
            });
            let outgoing = sink.with(|out: WireOut| {
                futures_util::future::ready(Ok::<_, axum::Error>(match out {
                    WireOut::Frame(bytes) => Message::Binary(bytes.into()),
                    WireOut::Ping => Message::Ping(Default::default()),
                    WireOut::Close => Message::Close(None),
                }))
            });
            let on_open = |link: Link, id: ConnId| {
                if let Some(conn) = link.accept(id) {
                    tokio::spawn(serve_conn(conn, rooms.clone(), verifier.clone()));
                }
            };
            driver.run(incoming, Box::pin(outgoing), on_open).await;
            tracing::info!(node = %from, "cluster: a node link closed");
        })
}

/// One relayed participant's session, as if it were their own WebSocket.
async fn serve_conn(conn: Conn, rooms: Arc<Rooms>, verifier: Arc<dyn TokenVerifier>) {
    let Conn { sender, receiver } = conn;
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let message = match receiver.recv().await? {
            Inbound::Text(text) => Message::Text(text.into()),
            Inbound::Close { code, reason } => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
            Inbound::Pong => Message::Pong(Default::default()),
        };
        Some((Ok::<_, std::convert::Infallible>(message), receiver))
    });
    let sink = futures_util::sink::unfold(sender, |sender, message: Message| async move {
        match message {
            Message::Text(text) => sender.text(text.as_str().to_owned()).await?,
            Message::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (f.code, f.reason.as_str().to_owned())
                });
                sender.close(code, reason);
            }
            Message::Ping(_) => sender.ping(),
            Message::Pong(_) | Message::Binary(_) => {}
        }
        Ok::<_, super::mux::Gone>(sender)
    });
    classroom_signaling::serve(Box::pin(sink), Box::pin(stream), rooms, verifier).await;
}

/// A relayed participant's join is for a room of this node: if the room has moved on, the
/// participant is told so (`wrong_node`) and joins again, rather than being relayed on a
/// second time.
struct NoRelay(Arc<dyn TokenVerifier>);

impl TokenVerifier for NoRelay {
    fn verify(&self, token: &str) -> Result<JoinClaims, InvalidToken> {
        self.0.verify(token)
    }

    fn admit<'a>(&'a self, claims: &'a JoinClaims) -> MediaFuture<'a, Result<(), AdmitError>> {
        self.0.admit(claims)
    }

    fn document_pages(
        &self,
        course: classroom_protocol::CourseId,
        document: classroom_protocol::DocumentId,
    ) -> MediaFuture<'_, Result<DocumentCheck, AdmitError>> {
        self.0.document_pages(course, document)
    }
}
