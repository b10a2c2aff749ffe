//! This node as an edge: a participant whose room's home is another node, sent here by the
//! REST join because the home was full (`cluster.home_capacity`), has their signaling carried
//! to the home over a WebSocket from this node to the home's `/ws`, one per participant
//! (`docs/scale-out.md`, step 1). The session relays the frames (`classroom_signaling`'s
//! `HomeLink`); this module opens the connection and pumps it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use classroom_protocol::LessonId;
use classroom_signaling::{HomeFrame, HomeLink};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::ClusterHandle;
use super::placement::{RedisPlacement, signaling_url};

/// How long the home node may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames waiting in each direction of one participant's link.
const LINK_QUEUE: usize = 64;

/// The links this node opens to home nodes.
pub struct EdgeLinks {
    pub cluster: ClusterHandle,
    pub placement: Arc<RedisPlacement>,
    /// Participants this node relays now: part of its load in the registry, so that the
    /// REST join sees an edge filling up.
    pub relayed: Arc<AtomicU64>,
}

impl EdgeLinks {
    /// A link to the home of `lesson`'s room, when edges are on and the home is another node
    /// that is online; `None` otherwise (the join is refused with `wrong_node`).
    pub async fn open(&self, lesson: LessonId) -> Option<HomeLink> {
        if !self.placement.edges_enabled() {
            return None;
        }
        let home = self.placement.home_of(lesson).await?;
        if home == self.cluster.this {
            return None;
        }
        let node = self
            .cluster
            .nodes()
            .into_iter()
            .find(|n| n.record.id == home && n.online)?;
        let url = signaling_url(&node.record.http_url);
        let socket = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => {
                tracing::warn!(%lesson, %home, error = %e, "cluster: cannot reach the room's home node");
                return None;
            }
            Err(_) => {
                tracing::warn!(%lesson, %home, "cluster: the room's home node did not answer");
                return None;
            }
        };
        let (to_home, outgoing) = mpsc::channel(LINK_QUEUE);
        let (incoming, from_home) = mpsc::channel(LINK_QUEUE);
        let relayed = self.relayed.clone();
        relayed.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            pump(socket, outgoing, incoming).await;
            relayed.fetch_sub(1, Ordering::Relaxed);
        });
        tracing::debug!(%lesson, %home, "cluster: relaying a participant to the room's home");
        Some(HomeLink { to_home, from_home })
    }
}

/// Carries frames between the session (`outgoing`, `incoming`) and the home's socket until
/// either ends. The home's close (code and reason) goes to the session; the session going
/// away closes the home's socket.
async fn pump<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    mut outgoing: mpsc::Receiver<HomeFrame>,
    incoming: mpsc::Sender<HomeFrame>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut to_home, mut from_home) = socket.split();
    loop {
        tokio::select! {
            frame = outgoing.recv() => match frame {
                Some(HomeFrame::Text(text)) => {
                    if to_home.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                // The session ended (or sent a close, which the edge does not): say goodbye.
                Some(HomeFrame::Close { .. }) | None => {
                    let _ = to_home.send(Message::Close(None)).await;
                    break;
                }
            },
            message = from_home.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if incoming.send(HomeFrame::Text(text.as_str().to_owned())).await.is_err() {
                        let _ = to_home.send(Message::Close(None)).await;
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    if let Some(frame) = frame {
                        let close = HomeFrame::Close {
                            code: frame.code.into(),
                            reason: frame.reason.as_str().to_owned(),
                        };
                        let _ = incoming.send(close).await;
                    }
                    break;
                }
                // Pings are answered by the socket itself.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
}
