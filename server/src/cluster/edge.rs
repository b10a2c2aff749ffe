//! This node as an edge: a participant whose room's home is another node, sent here by the
//! REST join because the home was full (`cluster.home_capacity`), has their signaling carried
//! to the home over this node's one link to that home (`docs/scale-out.md`, [`super::link`]),
//! as a virtual connection of its own. The session relays the frames (`classroom_signaling`'s
//! `HomeLink`); this module keeps one link per home node, opening it (again) when needed. The
//! home's commands for its participants' media peers, which live in this node's SFU, come over
//! the same link and are carried out one after another ([`super::edge_media`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use classroom_protocol::LessonId;
use classroom_rtmp::restream::tls::PushTls;
use classroom_signaling::{HomeFrame, HomeGone, HomeLink};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::ClusterHandle;
use super::edge_media::EdgeMedia;
use super::link::auth::ClusterSecret;
use super::link::home::unix_ms;
use super::link::mux::{Conn, Inbound, Link};
use super::link::node::{Incoming, NodeChannel};
use super::placement::RedisPlacement;
use super::registry::NodeId;

/// How long the home node may take to accept the link.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The links this node opens to home nodes, one per home.
pub struct EdgeLinks {
    cluster: ClusterHandle,
    placement: Arc<RedisPlacement>,
    /// Participants this node relays now: part of its load in the registry, so that the
    /// REST join sees an edge filling up.
    relayed: Arc<AtomicU64>,
    secret: ClusterSecret,
    /// For homes whose `cluster.public_url` is `https://`.
    tls: PushTls,
    /// The largest link frame (the home's own signaling limit and a frame's header).
    max_frame: usize,
    /// `cluster.link_max_participants` (a home refuses more anyway).
    max_conns: usize,
    links: Mutex<HashMap<NodeId, Link>>,
    /// The home's participants' media peers in this node's SFU.
    media: Arc<EdgeMedia>,
}

/// Why a link to a home node could not be opened.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(
        "the home node refused this node's credential (401): is cluster.secret the same on every node?"
    )]
    Refused,
    #[error("{0}")]
    WebSocket(#[from] WsError),
    #[error("{0}")]
    Tls(#[from] classroom_rtmp::restream::tls::TlsConnectError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the home's URL has no host")]
    NoHost,
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    Timeout,
}

impl EdgeLinks {
    pub fn new(
        cluster: ClusterHandle,
        placement: Arc<RedisPlacement>,
        secret: ClusterSecret,
        max_message_bytes: usize,
        max_conns: usize,
        media: Arc<EdgeMedia>,
    ) -> anyhow::Result<EdgeLinks> {
        Ok(EdgeLinks {
            relayed: cluster.relayed.clone(),
            cluster,
            placement,
            secret,
            tls: PushTls::new(None)?,
            max_frame: max_message_bytes.saturating_mul(4) + super::link::FRAME_OVERHEAD,
            max_conns,
            links: Mutex::new(HashMap::new()),
            media,
        })
    }

    /// A connection to the home of `lesson`'s room, when edges are on and the home is another
    /// node that is online; `None` otherwise (the join is refused with `wrong_node`).
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
        let link = self.link_to(&home, &node.record.http_url).await?;
        let Some(conn) = link.open() else {
            tracing::warn!(%lesson, %home, "cluster: the link to the room's home carries all it may");
            return None;
        };
        tracing::debug!(%lesson, %home, "cluster: relaying a participant to the room's home");
        Some(self.home_link(conn))
    }

    /// The live link to `home`, opened now if there is none.
    async fn link_to(&self, home: &NodeId, http_url: &str) -> Option<Link> {
        // Held while connecting: joins arriving meanwhile wait for this link, not open more.
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(home).filter(|l| l.is_alive()) {
            return Some(link.clone());
        }
        let url = super::link_url(http_url);
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(home, &url)).await;
        let link = match connected {
            Ok(Ok(link)) => link,
            Ok(Err(e)) => {
                tracing::warn!(%home, error = %e, "cluster: cannot open the link to a home node");
                return None;
            }
            Err(_) => {
                tracing::warn!(%home, error = %ConnectError::Timeout, "cluster: cannot open the link to a home node");
                return None;
            }
        };
        tracing::info!(%home, "cluster: link to a home node opened");
        links.insert(home.clone(), link.clone());
        Some(link)
    }

    async fn connect(&self, home: &NodeId, url: &str) -> Result<Link, ConnectError> {
        let mut request = url.into_client_request()?;
        let credential = self.secret.credential(&self.cluster.this, home, unix_ms());
        let credential = HeaderValue::from_str(&credential).map_err(WsError::from)?;
        request.headers_mut().insert("authorization", credential);
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_frame))
            .max_frame_size(Some(self.max_frame));
        let uri = request.uri().clone();
        let host = uri.host().ok_or(ConnectError::NoHost)?.to_owned();
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let refused = |e: WsError| match e {
            WsError::Http(response) if response.status() == 401 => ConnectError::Refused,
            e => ConnectError::WebSocket(e),
        };
        if secure {
            let tls = self.tls.connect(&host, tcp).await?;
            let (socket, _) =
                tokio_tungstenite::client_async_with_config(request, tls, Some(config))
                    .await
                    .map_err(refused)?;
            Ok(self.run(home, socket))
        } else {
            let (socket, _) =
                tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
                    .await
                    .map_err(refused)?;
            Ok(self.run(home, socket))
        }
    }

    /// Starts the link's driver over `socket`.
    fn run<S>(&self, home: &NodeId, socket: tokio_tungstenite::WebSocketStream<S>) -> Link
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (link, driver) = Link::new(self.max_conns);
        let (incoming, outgoing) = super::link::tungstenite_halves(socket);
        let channel = NodeChannel::new(link.clone());
        let media = self.media.clone();
        let id = media.link_opened(home, channel.clone());
        // The home's media commands, carried out in the order they came (the home's room
        // gives a room's commands one after another; a link's are few and quick).
        let (commands, mut queue) = tokio::sync::mpsc::unbounded_channel();
        let executor = {
            let media = media.clone();
            tokio::spawn(async move {
                while let Some((request, command)) = queue.recv().await {
                    media.execute(id, request, command).await;
                }
            })
        };
        let home = home.clone();
        tokio::spawn(async move {
            let on_node = |bytes: Vec<u8>| match channel.receive(&bytes) {
                Some(Incoming::Request { id, command }) => {
                    let _ = commands.send((id, command));
                }
                // Notices go to a home, not from it.
                Some(Incoming::Notice(_)) | None => {}
            };
            // An edge accepts no connections from the home.
            driver.run(incoming, outgoing, |_, _| {}, on_node).await;
            tracing::warn!(%home, "cluster: the link to a home node ended; its participants join again");
            channel.ended();
            executor.abort();
            media.link_closed(id).await;
        });
        link
    }

    /// The session's side of a connection, counted as relayed while either half lives.
    fn home_link(&self, conn: Conn) -> HomeLink {
        let Conn { sender, receiver } = conn;
        let counted = Arc::new(Relayed::new(self.relayed.clone()));
        let held = counted.clone();
        let to_home = futures_util::sink::unfold(
            (sender, counted),
            |(sender, counted), frame: HomeFrame| async move {
                match frame {
                    HomeFrame::Text(text) => sender.text(text).await.map_err(|_| HomeGone)?,
                    HomeFrame::Close { code, reason } => sender.close(code, reason),
                }
                Ok::<_, HomeGone>((sender, counted))
            },
        );
        let from_home =
            futures_util::stream::unfold((receiver, held), |(mut receiver, held)| async move {
                loop {
                    let frame = match receiver.recv().await? {
                        Inbound::Text(text) => HomeFrame::Text(text),
                        Inbound::Close { code, reason } => HomeFrame::Close { code, reason },
                        Inbound::Pong => continue,
                    };
                    return Some((frame, (receiver, held)));
                }
            });
        HomeLink {
            to_home: Box::pin(to_home),
            from_home: Box::pin(from_home),
        }
    }
}

/// One participant relayed, counted in this node's load while it lasts.
struct Relayed(Arc<AtomicU64>);

impl Relayed {
    fn new(count: Arc<AtomicU64>) -> Relayed {
        count.fetch_add(1, Ordering::Relaxed);
        Relayed(count)
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
