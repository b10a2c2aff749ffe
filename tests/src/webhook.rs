//! A webhook receiver on loopback for tests: records what it gets, answers 500 to the first
//! requests it is told to fail, and checks signatures as a school's receiver would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request the receiver got, and what it answered.
#[derive(Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub answered: u16,
}

/// An HTTP receiver on loopback: answers 500 to the first `failures` requests, 204 after.
pub async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/classroom/events",
        listener.local_addr().expect("addr")
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).to_string();
                let mut lines = head.lines();
                assert!(
                    lines
                        .next()
                        .expect("a request line")
                        .starts_with("POST /classroom/events ")
                );
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers["content-length"].parse().expect("a length");
                while data.len() < head_end + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&data[head_end..head_end + length]).to_string();
                let answered = if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    500
                } else {
                    204
                };
                let reply = format!("HTTP/1.1 {answered} X\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = tx.send(Received {
                    headers,
                    body,
                    answered,
                });
            });
        }
    });
    (url, rx)
}

/// What a receiver does: the signature is HMAC-SHA256 of "<timestamp>.<body>".
#[track_caller]
pub fn check_signature(secret: &str, received: &Received) {
    let timestamp = &received.headers["x-classroom-timestamp"];
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sent: i64 = timestamp.parse().expect("a number");
    assert!((now - sent).abs() < 60, "a fresh timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(format!("{timestamp}.{}", received.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        received.headers["x-classroom-signature"],
        format!("sha256={expected}")
    );
}
