//! A scriptable RTMP publisher on rml_rtmp's client session, for what ffmpeg 5.1 cannot send
//! (HEVC, Enhanced RTMP tags) and for protocol abuse after a valid handshake.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Publisher {
    pub stream: TcpStream,
    session: ClientSession,
}

impl Publisher {
    /// Handshake only: the chunk stream is the caller's to write.
    pub async fn handshake(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut handshake = Handshake::new(PeerType::Client);
        let p0_p1 = handshake.generate_outbound_p0_and_p1().unwrap();
        stream.write_all(&p0_p1).await.unwrap();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
            match handshake.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream.write_all(&response_bytes).await.unwrap();
                }
                HandshakeProcessResult::Completed { response_bytes, .. } => {
                    stream.write_all(&response_bytes).await.unwrap();
                    return stream;
                }
            }
        }
    }

    /// Connects to `live` and publishes on `key`; `Err` with the server's words if refused.
    pub async fn publish(addr: SocketAddr, key: &str) -> Result<Publisher, String> {
        let stream = Self::handshake(addr).await;
        let (session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut publisher = Publisher { stream, session };
        let request = publisher.session.request_connection("live".into()).unwrap();
        publisher.send(vec![request]).await;
        publisher
            .until(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
            .await?;
        let request = publisher
            .session
            .request_publishing(key.into(), PublishRequestType::Live)
            .unwrap();
        publisher.send(vec![request]).await;
        publisher
            .until(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await?;
        Ok(publisher)
    }

    pub async fn video(&mut self, tag: &'static [u8], ms: u32) {
        let packet = self
            .session
            .publish_video_data(Bytes::from_static(tag), RtmpTimestamp::new(ms), false)
            .unwrap();
        self.send(vec![packet]).await;
    }

    /// True once the server has closed the connection (within two seconds).
    pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn send(&mut self, results: Vec<ClientSessionResult>) {
        for result in results {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                // The server may already have closed: the caller checks for that.
                let _ = self.stream.write_all(&packet.bytes).await;
            }
        }
    }

    async fn until(&mut self, done: impl Fn(&ClientSessionEvent) -> bool) -> Result<(), String> {
        let mut buf = vec![0u8; 8192];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf))
                .await
                .map_err(|_| "timed out".to_owned())?;
            let n = read.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            let results = self
                .session
                .handle_input(&buf[..n])
                .map_err(|e| e.to_string())?;
            let mut finished = false;
            let mut outbound = Vec::new();
            for result in results {
                match result {
                    ClientSessionResult::RaisedEvent(event) => {
                        if let ClientSessionEvent::ConnectionRequestRejected { description } =
                            &event
                        {
                            return Err(description.clone());
                        }
                        if let ClientSessionEvent::UnhandleableOnStatusCode { code } = &event {
                            return Err(code.clone());
                        }
                        finished |= done(&event);
                    }
                    other => outbound.push(other),
                }
            }
            self.send(outbound).await;
            if finished {
                return Ok(());
            }
        }
    }
}
