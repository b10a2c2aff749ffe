//! The home's end of a node link: `GET /cluster/link` checks the calling node's credential
//! before the upgrade (a wrong one is `401 node_unauthenticated` and changes nothing), then
//! runs the link, serving each virtual connection the edge opens with the signaling session a
//! browser's WebSocket gets ([`classroom_signaling::serve`]). The link's end is each
//! connection's end: the sessions go as dropped connections (the room's reconnect grace
//! applies).
//!
//! The link's node-to-node messages ([`super::node`]) carry the media of the edge's
//! participants: the room's commands for their peers go to the edge's SFU through the home's
//! [`ClusterPort`], what the edge's SFU says of them comes back here and goes to the rooms in
//! the order it came, and the edge's offers of node media links are answered here.

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
use super::node::{Incoming, NodeChannel, NodeCommand, NodeReply, WireError};
use crate::cluster::media_port::ClusterPort;
use crate::cluster::registry::NodeId;
use classroom_signaling::media::EdgeId;

/// What a home needs to accept links.
pub struct LinkHome {
    pub this: NodeId,
    pub secret: ClusterSecret,
    /// `cluster.link_max_participants`.
    pub max_conns: usize,
    /// The rooms' media port, which routes an edge's participants' commands to the edge.
    pub port: Arc<ClusterPort>,
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
            let (link, driver) = Link::new(home.max_conns);
            let channel = NodeChannel::new(link);
            let edge = home.port.edge_opened(channel.clone());
            // The edge's notices, to the rooms one after another, in the order they came.
            let (notices, queue) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(deliver_notices(queue, rooms.clone()));
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
                    tokio::spawn(serve_conn(conn, rooms.clone(), verifier.clone(), edge));
                }
            };
            let on_node = |bytes: Vec<u8>| match channel.receive(&bytes) {
                Some(Incoming::Notice(notice)) => {
                    if let Some(notice) = home.port.edge_notice(edge, notice) {
                        let _ = notices.send(notice);
                    }
                }
                Some(Incoming::Request { id, command }) => {
                    tokio::spawn(answer(
                        home.port.clone(),
                        channel.clone(),
                        edge,
                        id,
                        command,
                    ));
                }
                None => {}
            };
            driver
                .run(incoming, Box::pin(outgoing), on_open, on_node)
                .await;
            channel.ended();
            home.port.edge_closed(edge);
            tracing::info!(node = %from, "cluster: a node link closed");
        })
}

/// Delivers an edge's notices about its peers to the rooms, in order, until the link ends.
async fn deliver_notices(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<classroom_signaling::MediaNotice>,
    rooms: Arc<Rooms>,
) {
    while let Some(notice) = queue.recv().await {
        rooms.deliver_media(notice).await;
    }
}

/// Answers an edge's request: an offer of a node media link; the media commands are the
/// home's to give, not to take.
async fn answer(
    port: Arc<ClusterPort>,
    channel: NodeChannel,
    edge: EdgeId,
    id: u64,
    command: NodeCommand,
) {
    let reply = match command {
        NodeCommand::NodeLinkOffer { room, offer } => NodeReply::NodeLinkAnswer {
            result: port.node_link_offer(edge, room, &offer).await,
        },
        NodeCommand::AddPeer { .. } | NodeCommand::AcceptOffer { .. } => NodeReply::Sdp {
            result: Err(WireError::Unavailable),
        },
        _ => NodeReply::Done {
            result: Err(WireError::Unavailable),
        },
    };
    channel.reply(id, reply);
}

/// One relayed participant's session, as if it were their own WebSocket; its media is the
/// edge's.
async fn serve_conn(conn: Conn, rooms: Arc<Rooms>, verifier: Arc<dyn TokenVerifier>, edge: EdgeId) {
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
    classroom_signaling::serve_relayed(Box::pin(sink), Box::pin(stream), rooms, verifier, edge)
        .await;
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
