//! The home's media port with a real SFU on 127.0.0.1 and an edge at the far end of an
//! in-memory signaling link, played by the test.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use classroom_media::driver::{self, DriverConfig};
use classroom_protocol::signal::ConnectionQuality;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;
use crate::cluster::link::mux::Link;
use crate::cluster::link::node::{Incoming, NodeChannel};
use crate::cluster::link::tungstenite_halves;
use crate::live::JoinClock;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SOON: Duration = Duration::from_secs(5);

/// The home's channel of a link, and the edge's, with what the edge receives.
async fn link() -> (NodeChannel, NodeChannel, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let edge_socket = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    let home_socket = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
    let (edge, edge_driver) = Link::new(16);
    let (home, home_driver) = Link::new(16);
    let home_channel = NodeChannel::new(home);
    let (to_edge, at_edge) = mpsc::unbounded_channel();
    let (incoming, outgoing) = tungstenite_halves(edge_socket);
    tokio::spawn(edge_driver.run(
        incoming,
        outgoing,
        |_, _| {},
        move |bytes| {
            let _ = to_edge.send(bytes);
        },
    ));
    let (incoming, outgoing) = tungstenite_halves(home_socket);
    let answers = home_channel.clone();
    tokio::spawn(home_driver.run(
        incoming,
        outgoing,
        |_, _| {},
        move |bytes| {
            let _ = answers.receive(&bytes);
        },
    ));
    (home_channel, NodeChannel::new(edge), at_edge)
}

async fn request(
    edge: &NodeChannel,
    at_edge: &mut mpsc::UnboundedReceiver<Vec<u8>>,
) -> (u64, NodeCommand) {
    let bytes = tokio::time::timeout(SOON, at_edge.recv())
        .await
        .expect("a request in time")
        .expect("the link goes on");
    match edge.receive(&bytes) {
        Some(Incoming::Request { id, command }) => (id, command),
        other => panic!("a request: {other:?}"),
    }
}

fn from_edge(edge: EdgeId) -> PeerAccess {
    PeerAccess {
        publish: false,
        audio_muted: true,
        connection_opened: None,
        edge: Some(edge),
    }
}

#[tokio::test]
async fn an_edges_peers_are_driven_over_its_link_and_the_edge_speaks_only_for_them() {
    let media = driver::start(DriverConfig::udp((LOOPBACK, 0).into(), LOOPBACK))
        .await
        .expect("an SFU on 127.0.0.1");
    let local = SfuPort::new(
        media.handle.clone(),
        std::sync::Arc::new(JoinClock::default()),
    );
    let port = std::sync::Arc::new(ClusterPort::new(local, LOOPBACK));
    let (home, edge, mut at_edge) = link().await;
    let e = port.edge_opened(home.clone());
    let room = RoomName::for_lesson(LessonId(1));
    let (p, q) = (PeerId((3 << 32) + 1), PeerId((3 << 32) + 2));

    // The edge's participant: the command crosses with the peer's access, the edge answers.
    let adding = tokio::spawn({
        let (port, room) = (port.clone(), room.clone());
        async move { port.add_peer(p, &room, "offer".into(), from_edge(e)).await }
    });
    let (id, command) = request(&edge, &mut at_edge).await;
    assert_eq!(
        command,
        NodeCommand::AddPeer {
            peer: p,
            room: room.clone(),
            offer: "offer".into(),
            publish: false,
            audio_muted: true,
        }
    );
    edge.reply(
        id,
        NodeReply::Sdp {
            result: Ok("answer".into()),
        },
    );
    let added = tokio::time::timeout(SOON, adding).await.expect("in time");
    assert_eq!(added.expect("the call ends"), Ok("answer".to_owned()));

    // A local peer's commands go to this node's SFU, which has no such peer.
    let answered = port.accept_answer(q, "answer".into()).await;
    assert_eq!(answered, Err(MediaError::NoPeer));

    // The edge speaks for its own peer only; another edge not even for that one.
    let quality = |peer| WireNotice::Quality {
        peer,
        quality: ConnectionQuality::Poor,
    };
    assert_eq!(
        port.edge_notice(e, quality(p)),
        Some(MediaNotice::Quality {
            peer: p,
            quality: ConnectionQuality::Poor
        })
    );
    assert_eq!(port.edge_notice(e, quality(q)), None);
    assert_eq!(port.edge_notice(EdgeId(e.0 + 1), quality(p)), None);
    // Nor can it make this node answer a node media link for a room it serves nobody of.
    let other = RoomName::for_lesson(LessonId(2));
    assert!(port.node_link_offer(e, other, "offer").await.is_err());

    // The link dies with a command on its way: the command fails, as do later ones.
    let sizing = tokio::spawn({
        let port = port.clone();
        async move { port.set_video_size(p, Mid::from("1"), 360).await }
    });
    let _ = request(&edge, &mut at_edge).await;
    home.ended();
    let failed = tokio::time::timeout(SOON, sizing).await.expect("in time");
    assert_eq!(failed.expect("the call ends"), Err(MediaError::Unavailable));
    port.edge_closed(e);
    let again = port.add_peer(p, &room, "offer".into(), from_edge(e)).await;
    assert_eq!(again, Err(MediaError::Unavailable));
    assert_eq!(port.node_link_stats().1, 0);
}
