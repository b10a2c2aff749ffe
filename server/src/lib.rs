//! `classroomd`: the classroom server. This crate wires the parts together: configuration,
//! the database, the HTTP router (REST API, health, metrics, OpenAPI), logging and graceful
//! shutdown. The parts themselves live in their own crates (`classroom-courses`, ...).
//!
//! [`start`] binds and runs a server in the background and returns its address, which is how
//! both `main` and the end-to-end tests run it.

pub mod attendance;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod descriptors;
pub mod events;
pub mod http;
pub mod live;
pub mod metrics;
pub mod origin;
pub mod recorder;
pub mod restream;
pub mod room_states;
pub mod rtmp;
pub mod serve;
pub mod web;
pub mod webhook;
pub mod whep;
pub mod whip;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use classroom_courses::api::placement::RoomPlacement;
use classroom_courses::api::{ApiState, SetupGate};
use classroom_courses::auth::{RateLimits, TokenIssuer, load_or_create_secret};
use classroom_courses::private_files::private_dir;
use classroom_courses::restream::RestreamBoard;
use classroom_courses::store::ProtectedSecrets;
use classroom_courses::{Db, Store};
use classroom_media::driver::{DriverConfig, TcpLimits};
use classroom_signaling::Rooms;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

/// A server running in the background.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// The UDP address the SFU's first media worker is bound to (the real port when configured
    /// with port 0).
    pub media_addr: SocketAddr,
    /// Every media worker's UDP address, by worker index.
    pub media_addrs: Vec<SocketAddr>,
    /// The TCP address of the first worker's ICE-TCP listener, if it has one.
    pub media_tcp_addr: Option<SocketAddr>,
    /// The TCP address encoders publish to over RTMP (the real port when configured with
    /// port 0); `None` with `rtmp.enabled = false`.
    pub rtmp_addr: Option<SocketAddr>,
    pub db: Db,
    /// The store the server uses (its key seals restream keys).
    pub store: Store,
    /// The first-run setup token, when the school had no admin at start: the link
    /// `/setup#<token>` creates the first one (see `classroom_courses::api::SetupGate`).
    pub setup_token: Option<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    drain: Drain,
}

/// What draining the node needs.
struct Drain {
    rooms: Arc<Rooms>,
    cluster: Option<(
        cluster::ClusterHandle,
        Arc<cluster::placement::RedisPlacement>,
    )>,
    wait: Duration,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain").field("wait", &self.wait).finish()
    }
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish, closes the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("the server task panicked")?
    }

    /// Resolves when the server has stopped by itself (it should not).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("the server task panicked")?
    }

    /// Drains the node before it stops (SIGTERM, a rolling upgrade): it takes no new rooms
    /// or joins, tells the cluster at once, gives up its rooms' leases, and sends every
    /// participant to join again (close code 1012; the REST join names the node to use); the
    /// rooms keep what they stored for where they open next. Returns once every signaling
    /// connection has gone, or after `signaling.drain_timeout_secs`.
    pub async fn drain(&self) {
        let drain = &self.drain;
        if let Some((cluster, _)) = &drain.cluster {
            cluster.set_draining();
        }
        let lessons = drain.rooms.drain().await;
        tracing::info!(
            rooms = lessons.len(),
            "draining: participants are sent to join again"
        );
        if let Some((_, placement)) = &drain.cluster
            && !lessons.is_empty()
        {
            match tokio::time::timeout(Duration::from_secs(2), placement.release(&lessons)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "draining: could not give up the rooms' leases; they lapse in 10 s")
                }
                Err(_) => tracing::warn!(
                    "draining: giving up the rooms' leases timed out; they lapse in 10 s"
                ),
            }
        }
        let deadline = tokio::time::Instant::now() + drain.wait;
        while drain.rooms.stats().connections_open > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A handle that asks the server to stop.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens the database (applying migrations), binds the HTTP port and starts serving.
pub async fn start(config: &Config) -> anyhow::Result<RunningServer> {
    config.cluster.check(&config.database_url())?;
    // Only our own user may read the database, the secret and the recordings.
    private_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {} (mode 0700)",
            config.data_dir.display()
        )
    })?;
    let db = Db::connect(&config.database_url(), config.database.max_connections).await?;
    let secret = load_or_create_secret(
        Some(config.auth.jwt_secret.as_str()).filter(|s| !s.is_empty()),
        &config.data_dir,
    )?;
    let tokens = TokenIssuer::new(
        &secret,
        Duration::from_secs(config.auth.session_ttl_secs),
        Duration::from_secs(config.auth.join_ttl_secs),
    );
    let limits = Arc::new(RateLimits::new(&config.rate_limit));
    let store = Store::new(db.clone(), &secret);
    // Before serving: no stream key or restream key stays readable in the database.
    let protected = store
        .protect_legacy_secrets()
        .await
        .context("cannot hash the stored stream keys and seal the restream keys")?;
    if protected != ProtectedSecrets::default() {
        tracing::info!(
            stream_keys = protected.stream_keys,
            restream_keys = protected.restream_keys,
            "hashed the stream keys and sealed the restream keys stored in plain text"
        );
    }
    let (restream_board, restream_changes) = RestreamBoard::new();
    let media = classroom_media::driver::start(DriverConfig {
        bind: config.media.udp_addr,
        tcp_bind: config.media.tcp_addr,
        advertised_ip: config.media.advertised_ip,
        advertised_port: config.media.advertised_port,
        advertise_udp: config.media.advertise_udp,
        tcp_limits: TcpLimits::default(),
        workers: config.media.worker_count(),
        first_frame_max_age: Duration::from_millis(config.media.first_frame_max_age_ms),
        worker_peer_limit: Some(config.media.worker_peer_limit).filter(|limit| *limit > 0),
        pacer_burst: Duration::from_millis(config.media.pacer_burst_ms),
        resend_history: Duration::from_millis(config.media.resend_history_ms),
    })
    .await
    .with_context(|| format!("cannot start the SFU on UDP {}", config.media.udp_addr))?;
    let media_addr = media.handle.local_addr();
    let media_addrs = media.handle.local_addrs();
    let media_tcp_addr = media.handle.tcp_local_addr();
    let media_tcp_addrs = media.handle.tcp_local_addrs();
    let (shutdown, stopping) = watch::channel(false);
    let webhook_sender = webhook::HttpSender {
        store: store.clone(),
        outbound: Arc::new(
            config
                .restream
                .outbound()
                .context("restream.allowed_networks")?,
        ),
        tls: classroom_rtmp::restream::PushTls::new(
            Some(std::path::Path::new(&config.restream.extra_ca_file))
                .filter(|p| !p.as_os_str().is_empty()),
        )
        .context("restream.extra_ca_file")?,
        timeout: Duration::from_secs(config.webhooks.timeout_secs.max(1)),
    };
    let recorder = recorder::start(
        &config.recorder,
        &config.documents,
        &config.data_dir,
        store.clone(),
        media.handle.clone(),
        stopping.clone(),
        recorder::WebhookSetup {
            sender: Arc::new(webhook_sender),
            policy: classroom_courses::store::RetryPolicy {
                max_attempts: config.webhooks.max_attempts.max(1),
                backoff: time::Duration::seconds(
                    config.webhooks.retry_backoff_secs.min(86_400) as i64
                ),
            },
        },
    )
    .await?;
    let (room_events, room_events_rx) = tokio::sync::mpsc::unbounded_channel();
    let joins = Arc::new(live::JoinClock::default());
    let sfu_port = live::SfuPort::new(media.handle.clone(), joins.clone());
    // Several nodes: peer ids unique across the cluster, and a port that sends an edge's
    // participants' media commands to that edge's SFU (docs/scale-out.md).
    let (peer_ids, cluster_port, edge_media) = match config.cluster.enabled() {
        false => (classroom_signaling::PeerIds::default(), None, None),
        true => {
            let number = cluster::node_number(&config.cluster).await;
            let link_ip = cluster::node_link_ip(media_addr, config.media.advertised_ip);
            let port = Arc::new(cluster::media_port::ClusterPort::new(
                sfu_port.clone(),
                link_ip,
            ));
            let edge = Arc::new(cluster::edge_media::EdgeMedia::new(
                media.handle.clone(),
                link_ip,
            ));
            (
                classroom_signaling::PeerIds::for_node(number),
                Some(port),
                Some(edge),
            )
        }
    };
    let port: Arc<dyn classroom_signaling::MediaPort> = match &cluster_port {
        Some(port) => port.clone(),
        None => Arc::new(sfu_port),
    };
    let rooms = Arc::new(
        Rooms::with_media_ids(config.signaling.to_config(), room_events, port, peer_ids)
            .with_room_states(room_states::StoredRoomStates::start(store.clone())),
    );
    let metrics = Arc::new(metrics::Metrics::new());
    // Every consumer of room events subscribes here, and each sees every event.
    let mut dispatcher = events::Dispatcher::new(metrics.clone());
    let whip = Arc::new(whip::WhipSessions::default());
    let ingest = if config.rtmp.enabled {
        let ingest = rtmp::start(
            &config.rtmp,
            store.clone(),
            rooms.clone(),
            media.handle.clone(),
            whip.clone(),
            stopping.clone(),
        )
        .await?;
        let queue = dispatcher.subscribe("rtmp", events::QUEUE_EVENTS, rtmp::OVERFLOW);
        tokio::spawn(rtmp::follow_lessons(ingest.handle.clone(), queue));
        Some(ingest)
    } else {
        None
    };
    let listener = TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.addr))?;
    let addr = listener.local_addr()?;
    // Several nodes: the registry and room placement, before anything that joins rooms.
    let rooms_for_load = Arc::downgrade(&rooms);
    let cluster = match config.cluster.enabled() {
        false => None,
        true => {
            let this = cluster::node_id(&config.cluster, &config.data_dir)?;
            let http_url = match config.cluster.public_url.trim() {
                "" => public_url(addr),
                url => url.to_owned(),
            };
            let workers = media_addrs.len() as u64;
            let load = move || {
                let rooms = rooms_for_load.upgrade();
                cluster::registry::NodeLoad {
                    rooms: rooms.as_ref().map_or(0, |r| r.open_rooms() as u64),
                    participants: rooms.as_ref().map_or(0, |r| r.stats().participants),
                    media_workers: workers,
                }
            };
            let media = media_addrs.iter().map(ToString::to_string).collect();
            let rooms_for_leases = Arc::downgrade(&rooms);
            let lessons: cluster::OpenLessons = Box::new(move || {
                rooms_for_leases
                    .upgrade()
                    .map(|r| r.open_lessons())
                    .unwrap_or_default()
            });
            let (handle, placement) = cluster::start(
                &config.cluster,
                this,
                http_url,
                media,
                load,
                lessons,
                stopping.clone(),
            )
            .await?;
            tracing::info!(node = %handle.this, "cluster: this node joins through Redis");
            Some((handle, placement))
        }
    };
    let drain_cluster = cluster.clone();
    let drain_rooms = rooms.clone();
    let queue = dispatcher.subscribe("whip", events::QUEUE_EVENTS, rtmp::OVERFLOW);
    tokio::spawn(whip::follow_lessons(
        whip.clone(),
        rooms.clone(),
        media.handle.clone(),
        queue,
    ));
    let whep = Arc::new(whep::WhepSessions::new(
        rooms.peer_ids().unwrap_or_default(),
    ));
    tokio::spawn(whep::follow(
        whep.clone(),
        Arc::downgrade(&rooms),
        media.handle.clone(),
        stopping.clone(),
    ));
    let placement = cluster.as_ref().map(|(_, placement)| placement.clone());
    let secret = cluster::link::auth::ClusterSecret::new(&config.cluster.secret);
    let edges = match &cluster {
        Some((handle, placement)) => Some(Arc::new(cluster::edge::EdgeLinks::new(
            handle.clone(),
            placement.clone(),
            secret.clone(),
            config.signaling.max_message_bytes,
            config.cluster.link_max_participants,
            edge_media.clone().context("a cluster's edge media")?,
        )?)),
        None => None,
    };
    let link_home = cluster
        .as_ref()
        .zip(cluster_port.clone())
        .map(|((handle, _), port)| {
            Arc::new(cluster::link::home::LinkHome {
                this: handle.this.clone(),
                secret,
                max_conns: config.cluster.link_max_participants,
                port,
            })
        });
    let cluster = cluster.map(|(handle, _)| handle);
    let live = live::LiveState {
        rooms: rooms.clone(),
        verifier: Arc::new(live::JoinTokens {
            tokens: tokens.clone(),
            store: store.clone(),
            placement: placement.clone(),
            edges,
        }),
        media: media.handle.clone(),
        recorder: recorder.stats.clone(),
        ingest: ingest.as_ref().map(|i| i.handle.clone()),
        whip: whip.clone(),
        whep: whep.clone(),
        origins: Arc::new(origin::AllowedOrigins::new(&config.http.public_origins)),
        cluster: cluster.clone(),
        link_home,
        edge_media: edge_media.clone(),
    };
    let outbound = Arc::new(
        config
            .restream
            .outbound()
            .context("restream.allowed_networks")?,
    );
    let restreams = restream::start(
        &config.restream,
        outbound.clone(),
        store.clone(),
        media.handle.clone(),
        rooms.clone(),
        restream_board.clone(),
        restream_changes,
    )
    .context("restream.extra_ca_file")?;
    let (access_changes, access_changes_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(live::deliver_access_changes(
        rooms.clone(),
        ingest.as_ref().map(|i| (i.handle.clone(), store.clone())),
        (whip.clone(), media.handle.clone(), store.clone()),
        access_changes_rx,
    ));
    let queue = dispatcher.subscribe("restream", events::QUEUE_EVENTS, restream::OVERFLOW);
    tokio::spawn(restream::follow_lessons(restreams, queue));
    let queue = dispatcher.subscribe("recorder", events::QUEUE_EVENTS, recorder::OVERFLOW);
    recorder.follow(queue, Arc::downgrade(&rooms));
    let queue = dispatcher.subscribe("lessons", events::QUEUE_EVENTS, live::LESSONS_OVERFLOW);
    tokio::spawn(live::apply_room_events(
        store.clone(),
        queue,
        recorder.webhook_events(),
    ));
    let queue = dispatcher.subscribe("attendance", events::QUEUE_EVENTS, attendance::OVERFLOW);
    tokio::spawn(attendance::follow_rooms(
        store.clone(),
        queue,
        recorder.webhook_events(),
    ));
    tokio::spawn(dispatcher.run(room_events_rx));
    tokio::spawn(live::relay_media_events(
        rooms.clone(),
        media.events,
        metrics.clone(),
        joins,
        edge_media.clone(),
    ));
    let media_workers = media.workers;
    let store_handle = store.clone();
    let (setup, setup_token) = if store.has_active_admin().await? {
        (SetupGate::closed(), None)
    } else {
        let (gate, token) = SetupGate::open();
        (gate, Some(token))
    };
    let api = ApiState {
        store,
        tokens,
        limits: limits.clone(),
        trust_forwarded_for: config.http.trust_forwarded_for,
        rtmp_public_url: ingest
            .as_ref()
            .map(|i| rtmp::public_url(&config.rtmp, i.addr)),
        stream_key_rotated: Some({
            // A rotated key cuts off the encoder streaming with it, over RTMP or WHIP.
            let ingest = ingest.as_ref().map(|i| i.handle.clone());
            let (whip, rooms, media) = (whip.clone(), Arc::downgrade(&rooms), media.handle.clone());
            classroom_courses::api::KeyRotated(Arc::new(move |lesson| {
                if let Some(ingest) = &ingest {
                    ingest.stop_publisher(lesson);
                }
                let (whip, media) = (whip.clone(), media.clone());
                let Some(rooms) = rooms.upgrade() else { return };
                tokio::spawn(async move {
                    whip::stop_lesson(&whip, &rooms, &media, lesson).await;
                });
            }))
        }),
        restreams: restream_board,
        restream_outbound: outbound,
        request_timeout: Duration::from_secs(config.http.request_timeout_secs),
        replays_dir: Some(recorder::replays_dir(&config.data_dir)),
        documents: Some(classroom_courses::api::DocumentsSetup {
            dir: recorder::documents_dir(&config.data_dir),
            max_upload_bytes: config.documents.max_upload_bytes,
            wake_workers: recorder.wake_handle(),
        }),
        access_changes,
        turn: config.turn.credentials().context("turn")?.map(Arc::new),
        setup,
        placement: placement
            .map(|p| classroom_courses::api::placement::Placement(p as Arc<dyn RoomPlacement>)),
    };
    let http_metrics = metrics.clone();
    let (router, _openapi) = http::router(
        api,
        db.clone(),
        metrics,
        live,
        cluster,
        Duration::from_secs(config.http.request_timeout_secs),
        Duration::from_secs(config.documents.upload_timeout_secs),
    );

    let mut stopping_cleanup = stopping.clone();
    tokio::spawn(async move {
        // Forget rate-limit buckets that have refilled, so memory stays bounded.
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => limits.retain_recent(),
                _ = stopping_cleanup.changed() => break,
            }
        }
    });
    let task_db = db.clone();
    let serve_settings = serve::ServeSettings::from_config(config);
    let task = tokio::spawn(async move {
        serve::run(listener, router, serve_settings, http_metrics, stopping).await;
        // Rooms keep the SFU's handle alive; stop its workers outright so their ports are free
        // at once.
        media_workers.stop().await;
        task_db.close().await;
        tracing::info!("stopped");
        Ok(())
    });
    // One UDP port and one ICE-TCP port per media worker.
    tracing::info!(udp = ?media_addrs, tcp = ?media_tcp_addrs, "SFU listening");
    Ok(RunningServer {
        addr,
        media_addr,
        media_addrs,
        media_tcp_addr,
        rtmp_addr: ingest.map(|i| i.addr),
        db,
        store: store_handle,
        setup_token,
        shutdown,
        task,
        drain: Drain {
            rooms: drain_rooms,
            cluster: drain_cluster,
            wait: Duration::from_secs(config.signaling.drain_timeout_secs),
        },
    })
}

/// Runs until `signal` resolves, then shuts down gracefully.
pub async fn serve(config: &Config, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut server = start(config).await?;
    let url = public_url(server.addr);
    tracing::info!(%url, database = %redacted_url(&config.database_url()), "classroomd is running");
    // Not `println!`: it panics when whoever started us closed our stdout (EPIPE), and a
    // server must not die of that.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "classroomd is running: open {url}");
    if let Some(token) = &server.setup_token {
        // The token goes to the console only, not to the log: whoever reads this console
        // may create the school's first admin.
        tracing::info!("the school has no admin yet: the setup link is on standard output");
        let _ = writeln!(
            stdout,
            "no admin yet: create the school's first admin at {url}setup#{token} \
             (this link works once; or use `classroomd user add --role admin`)"
        );
    }
    if let Some(rtmp) = server.rtmp_addr {
        let rtmp = rtmp::public_url(&config.rtmp, rtmp).replace("{host}", "127.0.0.1");
        tracing::info!(%rtmp, "encoders publish to RTMP");
        let _ = writeln!(stdout, "encoders publish to {rtmp}");
    }
    let _ = stdout.flush();
    drop(stdout);
    tokio::select! {
        result = server.wait() => return result,
        _ = signal => tracing::info!("shutting down: draining, then finishing requests in flight"),
    }
    server.drain().await;
    server.stop().await
}

/// The URL to print: a wildcard listen address is reached on loopback from this machine.
pub fn public_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/", addr.port())
}

/// A database URL without its password, for logs.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_to_print_and_log() {
        assert_eq!(
            public_url("0.0.0.0:8080".parse().expect("addr")),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            public_url("127.0.0.1:9".parse().expect("addr")),
            "http://127.0.0.1:9/"
        );
        assert_eq!(
            redacted_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redacted_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redacted_url("sqlite://data/classroom.db"),
            "sqlite://data/classroom.db"
        );
    }
}
