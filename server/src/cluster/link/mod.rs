//! The signaling link between two nodes (`docs/scale-out.md`): an edge node opens one
//! WebSocket to a room's home node (`/cluster/link`), authenticated with the cluster's shared
//! secret ([`auth`]), and carries every participant it relays to that home over it, each as a
//! virtual connection ([`frame::ConnId`]) with its own window ([`mux`]). At the home each
//! virtual connection is served by the same session code as a browser's WebSocket, so the
//! home's room sees the same frames, and the home's per-connection limits apply to each
//! participant; the link itself is one HTTP connection, so the home's per-address cap sees one
//! socket per edge, not one per participant, and `cluster.link_max_participants` bounds what
//! one link carries.

pub mod auth;
pub mod frame;
pub mod home;
pub mod mux;
pub mod node;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use mux::{Wire, WireOut};

/// The path of the link at the home.
pub const PATH: &str = "/cluster/link";

/// The most a frame of the link adds to the signaling message it carries.
pub const FRAME_OVERHEAD: usize = 16;

/// A link's socket as the client library gives it (the edge's end), as the link's halves.
pub fn tungstenite_halves<S>(
    socket: WebSocketStream<S>,
) -> (
    impl Stream<Item = Wire> + Unpin + Send,
    impl Sink<WireOut> + Unpin + Send,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let (sink, stream) = socket.split();
    let incoming = stream.map(|message| match message {
        Ok(Message::Binary(bytes)) => Wire::Frame(bytes.to_vec()),
        Ok(Message::Close(_)) | Err(_) => Wire::End,
        Ok(_) => Wire::Alive,
    });
    let outgoing = sink.with(|out: WireOut| {
        futures_util::future::ready(Ok::<_, WsError>(match out {
            WireOut::Frame(bytes) => Message::Binary(bytes.into()),
            WireOut::Ping => Message::Ping(Default::default()),
            WireOut::Close => Message::Close(None),
        }))
    });
    (incoming, Box::pin(outgoing))
}
