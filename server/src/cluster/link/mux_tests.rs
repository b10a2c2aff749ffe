//! Two ends of a link over an in-memory socket (`tokio::io::duplex`), with the WebSocket
//! library both nodes use.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;
use crate::cluster::link::tungstenite_halves;

const SOON: Duration = Duration::from_secs(5);
/// Long enough for a frame that could pass to have passed, on a loaded machine.
const A_WHILE: Duration = Duration::from_millis(300);

/// An edge's link (carrying at most `edge_max`) to a home's (at most `home_max`); the
/// connections the home accepts come out of the receiver. Dropping `kill` kills the socket.
struct Pair {
    edge: Link,
    home: Link,
    accepted: mpsc::UnboundedReceiver<Conn>,
    /// The node frames each side received.
    edge_nodes: mpsc::UnboundedReceiver<Vec<u8>>,
    home_nodes: mpsc::UnboundedReceiver<Vec<u8>>,
    home_task: tokio::task::JoinHandle<()>,
    edge_task: tokio::task::JoinHandle<()>,
}

async fn pair(edge_max: usize, home_max: usize) -> Pair {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let edge_socket = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    let home_socket = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
    let (edge, edge_driver) = Link::new(edge_max);
    let (home, home_driver) = Link::new(home_max);
    let (incoming, outgoing) = tungstenite_halves(edge_socket);
    let (to_edge, edge_nodes) = mpsc::unbounded_channel();
    let edge_task = tokio::spawn(edge_driver.run(
        incoming,
        outgoing,
        |_, _| {},
        move |bytes| {
            let _ = to_edge.send(bytes);
        },
    ));
    let (accept, accepted) = mpsc::unbounded_channel();
    let (incoming, outgoing) = tungstenite_halves(home_socket);
    let (to_home, home_nodes) = mpsc::unbounded_channel();
    let on_open = move |link: Link, id| {
        if let Some(conn) = link.accept(id) {
            let _ = accept.send(conn);
        }
    };
    let home_task = tokio::spawn(home_driver.run(incoming, outgoing, on_open, move |bytes| {
        let _ = to_home.send(bytes);
    }));
    Pair {
        edge,
        home,
        accepted,
        edge_nodes,
        home_nodes,
        home_task,
        edge_task,
    }
}

async fn next(receiver: &mut ConnReceiver) -> Option<Inbound> {
    tokio::time::timeout(SOON, receiver.recv())
        .await
        .expect("a frame or the end in time")
}

impl Pair {
    async fn open(&mut self) -> (Conn, Conn) {
        let at_edge = self.edge.open().expect("the link takes a connection");
        let at_home = tokio::time::timeout(SOON, self.accepted.recv())
            .await
            .expect("in time")
            .expect("the home accepts it");
        (at_edge, at_home)
    }
}

#[tokio::test]
async fn frames_and_close_codes_pass_both_ways_per_connection() {
    let mut pair = pair(16, 16).await;
    let (edge_a, mut home_a) = pair.open().await;
    let (mut edge_b, mut home_b) = pair.open().await;
    edge_a.sender.text("join a".into()).await.expect("sent");
    edge_b.sender.text("join b".into()).await.expect("sent");
    assert_eq!(
        next(&mut home_a.receiver).await,
        Some(Inbound::Text("join a".into()))
    );
    assert_eq!(
        next(&mut home_b.receiver).await,
        Some(Inbound::Text("join b".into()))
    );
    home_b.sender.text("joined b".into()).await.expect("sent");
    assert_eq!(
        next(&mut edge_b.receiver).await,
        Some(Inbound::Text("joined b".into()))
    );

    // The home closes b (removed by a teacher): the edge gets the code, a goes on.
    home_b.sender.close(4003, "removed".into());
    let closed = Inbound::Close {
        code: 4003,
        reason: "removed".into(),
    };
    assert_eq!(next(&mut edge_b.receiver).await, Some(closed));
    assert_eq!(next(&mut edge_b.receiver).await, None);
    assert!(edge_b.sender.text("late".into()).await.is_err());
    // The edge's client of a leaves with 1000: the home's session gets it.
    edge_a.sender.close(1000, String::new());
    let closed = Inbound::Close {
        code: 1000,
        reason: String::new(),
    };
    assert_eq!(next(&mut home_a.receiver).await, Some(closed));
    assert_eq!(next(&mut home_a.receiver).await, None);
    assert_eq!(pair.edge.connections(), 0);

    // A connection whose halves are dropped without a close is closed as gone.
    let (edge_c, mut home_c) = pair.open().await;
    drop(edge_c);
    let gone = Inbound::Close {
        code: CLOSE_GONE,
        reason: String::new(),
    };
    assert_eq!(next(&mut home_c.receiver).await, Some(gone));
}

#[tokio::test]
async fn a_participant_that_does_not_read_stalls_only_itself() {
    let mut pair = pair(16, 16).await;
    let (mut edge_slow, home_slow) = pair.open().await;
    let (mut edge_other, home_other) = pair.open().await;
    // The home sends the slow participant a window's worth, which nobody reads at the edge.
    for i in 0..WINDOW {
        tokio::time::timeout(SOON, home_slow.sender.text(format!("{i}")))
            .await
            .expect("within the window, a send does not wait")
            .expect("sent");
    }
    // One more waits for the slow one's credit ...
    let more = tokio::time::timeout(A_WHILE, home_slow.sender.text("more".into())).await;
    assert!(more.is_err(), "a send past the window waits");
    // ... while the other participant's frames pass both ways.
    for i in 0..3 * WINDOW {
        home_other
            .sender
            .text(format!("to other {i}"))
            .await
            .expect("sent");
        let got = next(&mut edge_other.receiver).await;
        assert_eq!(got, Some(Inbound::Text(format!("to other {i}"))));
    }
    edge_other
        .sender
        .text("from other".into())
        .await
        .expect("sent");
    let mut home_other_rx = home_other.receiver;
    assert_eq!(
        next(&mut home_other_rx).await,
        Some(Inbound::Text("from other".into()))
    );
    // The slow one reads: its frames come in order, and its sender gets credit again.
    for i in 0..WINDOW {
        assert_eq!(
            next(&mut edge_slow.receiver).await,
            Some(Inbound::Text(format!("{i}")))
        );
    }
    tokio::time::timeout(SOON, home_slow.sender.text("more".into()))
        .await
        .expect("credit came back")
        .expect("sent");
    assert_eq!(
        next(&mut edge_slow.receiver).await,
        Some(Inbound::Text("more".into()))
    );
}

#[tokio::test]
async fn a_link_carries_no_more_connections_than_the_home_allows() {
    let mut pair = pair(16, 2).await;
    let _first = pair.open().await;
    let _second = pair.open().await;
    let mut third = pair.edge.open().expect("the edge's own bound is higher");
    let full = Inbound::Close {
        code: CLOSE_LINK_FULL,
        reason: "link_full".into(),
    };
    assert_eq!(next(&mut third.receiver).await, Some(full));
    assert_eq!(next(&mut third.receiver).await, None);
    // The edge's bound holds by itself.
    let mut small = self::pair(1, 16).await;
    let _only = small.open().await;
    assert!(small.edge.open().is_none());
}

#[tokio::test]
async fn the_end_of_the_link_ends_every_connection_on_both_sides() {
    let mut pair = pair(16, 16).await;
    let (mut edge_a, _home_a) = pair.open().await;
    let (mut edge_b, _home_b) = pair.open().await;
    // The home node dies: its socket is gone.
    pair.home_task.abort();
    let _ = pair.home_task.await;
    assert_eq!(next(&mut edge_a.receiver).await, None);
    assert_eq!(next(&mut edge_b.receiver).await, None);
    assert!(edge_a.sender.text("anyone?".into()).await.is_err());
    let _ = tokio::time::timeout(SOON, pair.edge_task).await;
    assert!(!pair.edge.is_alive());
    assert!(pair.edge.open().is_none());
    // The home's side of a link whose edge died, likewise.
    let mut pair = self::pair(16, 16).await;
    let (_edge, mut home) = pair.open().await;
    pair.edge_task.abort();
    assert_eq!(next(&mut home.receiver).await, None);
    assert!(home.sender.text("anyone?".into()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_silent_home_ends_the_link() {
    // A socket whose far end never answers (a frozen process, a partition).
    let (a, _b) = tokio::io::duplex(64 * 1024);
    let socket = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    let (link, driver) = Link::new(4);
    let mut conn = link.open().expect("a connection");
    let (incoming, outgoing) = tungstenite_halves(socket);
    let task = tokio::spawn(driver.run(incoming, outgoing, |_, _| {}, |_| {}));
    tokio::time::sleep(IDLE + 2 * PING_EVERY).await;
    assert!(!link.is_alive());
    assert_eq!(conn.receiver.recv().await, None);
    task.await.expect("the driver ends");
}

mod node_messages {
    use super::*;
    use crate::cluster::link::node::{
        CallError, Incoming, NodeChannel, NodeCommand, NodeMessage, NodeReply, WireError,
    };
    use classroom_protocol::PeerId;

    async fn bytes(from: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<u8> {
        tokio::time::timeout(SOON, from.recv())
            .await
            .expect("a node frame in time")
            .expect("the link goes on")
    }

    #[tokio::test]
    async fn a_request_is_answered_and_a_malformed_message_is_dropped_and_counted() {
        let mut pair = pair(16, 16).await;
        let (home, edge) = (
            NodeChannel::new(pair.home.clone()),
            NodeChannel::new(pair.edge.clone()),
        );
        let peer = PeerId((7 << 32) + 1);
        let call = tokio::spawn({
            let home = home.clone();
            async move { home.call(NodeCommand::RemovePeer { peer }).await }
        });
        // A message that is not ours, one of another version, then the request.
        pair.home.send_node(b"\x01{\"type\":\"mystery\"}".to_vec());
        pair.home.send_node(b"\x02{}".to_vec());
        pair.home.send_node(Vec::new());
        for _ in 0..3 {
            let junk = bytes(&mut pair.edge_nodes).await;
            assert!(edge.receive(&junk).is_none());
        }
        assert_eq!(edge.dropped(), 3);
        let request = bytes(&mut pair.edge_nodes).await;
        let Some(Incoming::Request { id, command }) = edge.receive(&request) else {
            panic!("a request: {:?}", NodeMessage::decode(&request))
        };
        assert_eq!(command, NodeCommand::RemovePeer { peer });
        let reply = NodeReply::Done {
            result: Err(WireError::NoPeer),
        };
        edge.reply(id, reply.clone());
        // An answer nobody asked for is dropped too.
        edge.reply(id + 100, reply.clone());
        for _ in 0..2 {
            let answer = bytes(&mut pair.home_nodes).await;
            assert!(home.receive(&answer).is_none());
        }
        let answered = tokio::time::timeout(SOON, call).await.expect("in time");
        assert_eq!(answered.expect("the call ends"), Ok(reply));
        assert_eq!((home.dropped(), home.waiting()), (1, 0));
        // The link went on through all of it: its connections still carry text.
        let (edge_conn, mut home_conn) = pair.open().await;
        edge_conn
            .sender
            .text("still here".into())
            .await
            .expect("sent");
        assert_eq!(
            next(&mut home_conn.receiver).await,
            Some(Inbound::Text("still here".into()))
        );
    }

    #[tokio::test]
    async fn requests_waiting_when_the_link_ends_fail() {
        let mut pair = pair(16, 16).await;
        let home = NodeChannel::new(pair.home.clone());
        let call = tokio::spawn({
            let home = home.clone();
            async move { home.call(NodeCommand::RemovePeer { peer: PeerId(1) }).await }
        });
        // The edge got the request, and dies before answering.
        let _ = bytes(&mut pair.edge_nodes).await;
        pair.edge_task.abort();
        let _ = tokio::time::timeout(SOON, &mut pair.home_task).await;
        home.ended();
        let failed = tokio::time::timeout(SOON, call).await.expect("in time");
        assert_eq!(failed.expect("the call ends"), Err(CallError::Gone));
        // And a request on the dead link fails at once.
        let later = home.call(NodeCommand::RemovePeer { peer: PeerId(1) }).await;
        assert_eq!(later, Err(CallError::Gone));
    }
}
