//! The tokio layer around [`Sfu`]: one UDP socket and one task that owns the core.
//!
//! The task waits for whichever comes first — a datagram, a command, or the core's deadline —
//! feeds it to the core with `Instant::now()`, then drains the core: datagrams go out on the
//! socket, events go out on an unbounded channel (events are per peer or per track, never per
//! packet, so the channel cannot grow faster than signaling produces work). Everything on the
//! media path stays inside this one task.
//!
//! The task ends when every [`MediaHandle`] is dropped, or on a socket error it cannot recover.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use classroom_protocol::RoomName;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, ConfigError, MediaEvent, Output, PeerId,
    Sfu, SfuConfig, SfuStats, UnknownPeer,
};

/// Largest datagram we read; WebRTC keeps datagrams under ~1200 bytes.
const RECV_BUFFER: usize = 2048;
/// Commands waiting for the task; senders wait when it is full.
const COMMAND_QUEUE: usize = 256;

/// Where the driver listens and what it tells peers.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Socket address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The IP peers reach us on, advertised as the ICE host candidate with the bound port.
    pub advertised_ip: IpAddr,
}

/// Starting the driver failed.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot bind the media socket: {0}")]
    Bind(#[from] io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A command failed, or never reached the core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError<E> {
    /// The driver task has ended.
    #[error("the media driver has stopped")]
    Stopped,
    #[error(transparent)]
    Failed(E),
}

/// A command to the core, with the channel its reply goes back on.
#[derive(Debug)]
pub enum MediaCommand {
    AddPeer {
        peer: PeerId,
        room: RoomName,
        offer: String,
        /// The peer's initial publish permission (see [`Sfu::add_peer_with`]).
        publish_allowed: bool,
        reply: oneshot::Sender<Result<String, AddPeerError>>,
    },
    AcceptOffer {
        peer: PeerId,
        offer: String,
        reply: oneshot::Sender<Result<String, AcceptOfferError>>,
    },
    AcceptAnswer {
        peer: PeerId,
        answer: String,
        reply: oneshot::Sender<Result<(), AcceptAnswerError>>,
    },
    RemovePeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    SetPublishAllowed {
        peer: PeerId,
        allowed: bool,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    SetAudioMuted {
        peer: PeerId,
        muted: bool,
        reply: oneshot::Sender<Result<(), UnknownPeer>>,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
}

/// The running driver: a handle to command it and the stream of its events.
pub struct MediaDriver {
    pub handle: MediaHandle,
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
    pub task: JoinHandle<()>,
}

/// Cheap to clone; one per signaling task that needs the media plane.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    commands: mpsc::Sender<MediaCommand>,
    local_addr: SocketAddr,
}

/// Binds the socket and spawns the driver task on the current tokio runtime.
pub async fn start(config: DriverConfig) -> Result<MediaDriver, StartError> {
    let socket = UdpSocket::bind(config.bind).await?;
    let local_addr = socket.local_addr()?;
    let candidate = SocketAddr::new(config.advertised_ip, local_addr.port());
    let sfu = Sfu::new(Instant::now(), SfuConfig::new(candidate))?;
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(socket, candidate, sfu, command_rx, event_tx));
    Ok(MediaDriver {
        handle: MediaHandle {
            commands: command_tx,
            local_addr,
        },
        events: event_rx,
        task,
    })
}

impl MediaHandle {
    /// The address the media socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a peer from its SDP offer; returns the SDP answer.
    pub async fn add_peer(
        &self,
        peer: PeerId,
        room: RoomName,
        offer: String,
    ) -> Result<String, CommandError<AddPeerError>> {
        self.add_peer_with(peer, room, offer, true).await
    }

    /// Adds a peer with its initial publish permission; returns the SDP answer.
    pub async fn add_peer_with(
        &self,
        peer: PeerId,
        room: RoomName,
        offer: String,
        publish_allowed: bool,
    ) -> Result<String, CommandError<AddPeerError>> {
        self.call(|reply| MediaCommand::AddPeer {
            peer,
            room,
            offer,
            publish_allowed,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    /// A client renegotiation; returns the SDP answer.
    pub async fn accept_offer(
        &self,
        peer: PeerId,
        offer: String,
    ) -> Result<String, CommandError<AcceptOfferError>> {
        self.call(|reply| MediaCommand::AcceptOffer { peer, offer, reply })
            .await?
            .map_err(CommandError::Failed)
    }

    /// The client's answer to a [`MediaEvent::OfferCreated`].
    pub async fn accept_answer(
        &self,
        peer: PeerId,
        answer: String,
    ) -> Result<(), CommandError<AcceptAnswerError>> {
        self.call(|reply| MediaCommand::AcceptAnswer {
            peer,
            answer,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    pub async fn remove_peer(&self, peer: PeerId) -> Result<(), CommandError<UnknownPeer>> {
        self.call(|reply| MediaCommand::RemovePeer { peer, reply })
            .await?
            .map_err(CommandError::Failed)
    }

    pub async fn set_publish_allowed(
        &self,
        peer: PeerId,
        allowed: bool,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call(|reply| MediaCommand::SetPublishAllowed {
            peer,
            allowed,
            reply,
        })
        .await?
        .map_err(CommandError::Failed)
    }

    pub async fn set_audio_muted(
        &self,
        peer: PeerId,
        muted: bool,
    ) -> Result<(), CommandError<UnknownPeer>> {
        self.call(|reply| MediaCommand::SetAudioMuted { peer, muted, reply })
            .await?
            .map_err(CommandError::Failed)
    }

    pub async fn stats(&self) -> Result<SfuStats, CommandError<std::convert::Infallible>> {
        self.call(|reply| MediaCommand::Stats { reply }).await
    }

    async fn call<T, E>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> MediaCommand,
    ) -> Result<T, CommandError<E>> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| CommandError::Stopped)?;
        response.await.map_err(|_| CommandError::Stopped)
    }
}

async fn run(
    socket: UdpSocket,
    candidate: SocketAddr,
    mut sfu: Sfu,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut buf = vec![0; RECV_BUFFER];
    loop {
        let deadline = loop {
            match sfu.poll_output() {
                Output::Transmit { destination, bytes } => {
                    if let Err(error) = socket.send_to(&bytes, destination).await {
                        // A full buffer or an unreachable peer loses one datagram, as UDP does.
                        debug!(%destination, %error, "media send failed");
                    }
                }
                Output::Event(event) => {
                    // Nobody listening is not our problem; the media keeps flowing.
                    let _ = events.send(event);
                }
                Output::Timeout(at) => break at,
            }
        };

        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => execute(&mut sfu, command),
                None => return,
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, source)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    sfu.handle_datagram(Instant::now(), source, candidate, datagram);
                }
                Err(error) if is_transient(&error) => {
                    debug!(%error, "media receive failed");
                }
                Err(error) => {
                    warn!(%error, "media socket failed; driver stops");
                    return;
                }
            },
            () = tokio::time::sleep_until(deadline.into()) => sfu.handle_timeout(Instant::now()),
        }
    }
}

fn execute(sfu: &mut Sfu, command: MediaCommand) {
    let now = Instant::now();
    // A dropped reply receiver means the caller gave up; the command still took effect.
    match command {
        MediaCommand::AddPeer {
            peer,
            room,
            offer,
            publish_allowed,
            reply,
        } => {
            let _ = reply.send(sfu.add_peer_with(now, peer, room, &offer, publish_allowed));
        }
        MediaCommand::AcceptOffer { peer, offer, reply } => {
            let _ = reply.send(sfu.accept_offer(now, peer, &offer));
        }
        MediaCommand::AcceptAnswer {
            peer,
            answer,
            reply,
        } => {
            let _ = reply.send(sfu.accept_answer(now, peer, &answer));
        }
        MediaCommand::RemovePeer { peer, reply } => {
            let _ = reply.send(sfu.remove_peer(now, peer));
        }
        MediaCommand::SetPublishAllowed {
            peer,
            allowed,
            reply,
        } => {
            let _ = reply.send(sfu.set_publish_allowed(now, peer, allowed));
        }
        MediaCommand::SetAudioMuted { peer, muted, reply } => {
            let _ = reply.send(sfu.set_audio_muted(now, peer, muted));
        }
        MediaCommand::Stats { reply } => {
            let _ = reply.send(sfu.stats());
        }
    }
}

/// Errors after which the socket still works (ICMP feedback surfacing on a later receive).
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
