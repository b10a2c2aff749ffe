//! Slowloris and descriptor exhaustion: sockets that never finish a request are closed after
//! the header timeout, one address cannot hold more than its cap, and real clients are served
//! while the attack lasts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::ServerMessage;
use classroom_tests::school::{School, join_token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEADER_TIMEOUT_SECS: u64 = 3;
const PER_ADDRESS: usize = 110;
/// How long a test waits for sockets the server should close after `HEADER_TIMEOUT_SECS`:
/// generous, a slow machine must not fail it; without the timeout they are never closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(40);

/// A TCP connection to `server` from the loopback address `source` (127.0.0.0/8 is all ours,
/// so 127.0.0.2, 127.0.0.3, ... stand for other hosts).
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .expect("a loopback source address");
    socket.connect(server).await.expect("connects")
}

/// Reads until the server closes the socket; returns what it sent and when it closed
/// (`None` if it did not within `CLOSE_WITHIN`).
async fn read_to_close(mut socket: TcpStream, opened: Instant) -> (Vec<u8>, Option<Duration>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::from_std(opened) + CLOSE_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(opened.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends a request head one byte a second and never finishes it; returns when the server
/// closed the socket (`None`: it did not within `CLOSE_WITHIN`).
async fn trickle(socket: TcpStream, opened: Instant) -> Option<Duration> {
    let (mut reader, mut writer) = socket.into_split();
    let head = b"GET /healthz HTTP/1.1\r\nHost: school.example\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let writing = async {
        for byte in head.iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                Ok(_) => continue,
            }
        }
    };
    tokio::select! {
        _ = writing => None,
        elapsed = closed => Some(elapsed),
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(opened) + CLOSE_WITHIN) => None,
    }
}

fn attacker(i: usize) -> Ipv4Addr {
    // 100 sockets per attacking address, from 127.0.0.10 on.
    Ipv4Addr::new(
        127,
        0,
        0,
        10 + u8::try_from(i / 100).expect("few addresses"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_sockets_are_closed_and_real_clients_are_still_served() {
    // Hundreds of sockets on both ends live in this one process.
    classroomd::descriptors::raise_to_hard_limit().expect("the descriptor limit can be raised");
    let server = TestServer::start(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = HEADER_TIMEOUT_SECS;
        c.http.max_connections_per_address = PER_ADDRESS;
        c.http.max_connections = 1000;
    })
    .await
    .expect("a server");
    let addr = server.server.as_ref().expect("running").addr;
    let school = School::new(&server).await;
    let lesson = school.lesson("Under attack").await;

    // The attack: 300 silent sockets and 200 that trickle a header byte a second, from five
    // addresses (100 each), plus 15 more silent ones from the first address, 5 past its cap.
    let mut silent = Vec::new();
    for i in 0..300 {
        let opened = Instant::now();
        silent.push((connect_from(attacker(i), addr).await, opened));
    }
    let mut trickling = Vec::new();
    for i in 300..500 {
        let opened = Instant::now();
        let socket = connect_from(attacker(i), addr).await;
        trickling.push(tokio::spawn(trickle(socket, opened)));
    }
    let mut over_cap = Vec::new();
    for _ in 0..15 {
        let opened = Instant::now();
        over_cap.push((connect_from(attacker(0), addr).await, opened));
    }
    // A WebSocket that never sends `join`, and a keep-alive connection left idle.
    let silent_ws = tokio::spawn({
        let base = server.base.clone();
        async move {
            let opened = Instant::now();
            let mut ws = Ws::connect(&base).await;
            let deadline = Duration::from_secs(30);
            match ws.recv_within(deadline).await {
                Ok(Some(ServerMessage::Error { code, .. })) => {
                    assert_eq!(code, ErrorCode::JoinTimeout);
                    assert_eq!(ws.recv_within(deadline).await, Ok(None), "then closed");
                }
                other => panic!("a silent WebSocket got {other:?} instead of join_timeout"),
            }
            opened.elapsed()
        }
    });
    let mut idle = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: school.example\r\n\r\n")
        .await
        .expect("a request");
    let idle_opened = Instant::now();

    // A real client from another address is served while the attack is held: the metrics
    // show the attack's sockets open, then the API and a signaling join work.
    let open = server
        .metric("classroom_http_connections_open")
        .await
        .expect("the open connections are counted");
    assert!(open >= 500.0, "the attack is held open: {open}");
    school.teacher.get("/healthz").await.expect(200);
    school.teacher.get("/api/v1/me").await.expect(200);
    let token = join_token(&school.teacher, lesson).await;
    let (_teacher, joined) = Ws::join(&server.base, &token).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }));

    // The cap: the first address's last 5 sockets were answered 503 and closed at once; the
    // other 10 were admitted (100 + 10 = PER_ADDRESS).
    let mut refused = 0;
    for (socket, opened) in over_cap {
        let (got, closed) = read_to_close(socket, opened).await;
        assert!(closed.is_some(), "every socket is closed in the end");
        if got.starts_with(b"HTTP/1.1 503") {
            assert!(
                String::from_utf8_lossy(&got).contains("too_many_connections"),
                "{}",
                String::from_utf8_lossy(&got)
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 15 - (PER_ADDRESS - 100));
    assert_eq!(
        server
            .metric("classroom_http_connections_refused_total{reason=\"address_full\"}")
            .await,
        Some(5.0)
    );

    // Every silent and trickling socket is closed by the header timeout.
    let mut slowest = Duration::ZERO;
    for (socket, opened) in silent {
        let (got, closed) = read_to_close(socket, opened).await;
        let closed = closed.expect("a silent socket is closed");
        assert!(!got.starts_with(b"HTTP/1.1 2"), "served nothing");
        slowest = slowest.max(closed);
    }
    for task in trickling {
        let closed = task
            .await
            .expect("the trickling task")
            .expect("a trickling socket is closed");
        slowest = slowest.max(closed);
    }
    let (got, closed) = read_to_close(idle, idle_opened).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "the idle one was served first"
    );
    let idle_closed = closed.expect("an idle keep-alive connection is closed");
    let ws_closed = silent_ws.await.expect("the silent WebSocket task");
    eprintln!(
        "closed: attack sockets within {slowest:?}, idle keep-alive after {idle_closed:?}, \
         silent WebSocket after {ws_closed:?} (header timeout {HEADER_TIMEOUT_SECS} s)"
    );
    let timeouts = server
        .metric("classroom_http_header_timeouts_total")
        .await
        .expect("counted");
    assert!(timeouts >= 510.0, "header timeouts counted: {timeouts}");

    // The first address got its places back.
    let again = reqwest::Client::builder()
        .local_address(IpAddr::V4(attacker(0)))
        .build()
        .expect("a client");
    let healthz = again
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(healthz.status().as_u16(), 200);
    drop(again);
    server.stop().await;
}
