//! Nodes of one school in a test: each a `classroomd` on PostgreSQL (one database shared by
//! the nodes) and a real Redis under a fresh key prefix; in process ([`node`]), or in a child
//! process for the tests that `kill -9` one ([`child_node`]). And what the cluster tests ask of
//! the nodes: the REST join, the registry as a node sees it, the test's keys forgotten.

use std::path::Path;
use std::time::{Duration, Instant};

use classroomd::config::Config;
use serde_json::Value;

use crate::child::ChildServer;
use crate::{Backend, Client, TestServer};

/// The Redis every machine of ours runs.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// The secret the test clusters' nodes share (`cluster.secret`).
pub const SECRET: &str = "the secret the nodes of a test cluster share, 32+ bytes";

/// How long the cluster helpers wait for what they wait for.
const WAIT: Duration = Duration::from_secs(20);

/// A fresh key prefix: tests sharing the Redis never see each other's keys.
pub fn prefix() -> String {
    format!("test-{}", classroom_courses::auth::random_token(6))
}

/// A node of the cluster under `prefix`, sharing `first`'s database when given.
pub async fn node(
    redis: &str,
    prefix: &str,
    id: &str,
    first: Option<&TestServer>,
) -> Option<TestServer> {
    node_tuned(redis, prefix, id, first, |_| {}).await
}

/// [`node`], with `tune` applied to its configuration last.
pub async fn node_tuned(
    redis: &str,
    prefix: &str,
    id: &str,
    first: Option<&TestServer>,
    tune: impl FnOnce(&mut Config) + Send + 'static,
) -> Option<TestServer> {
    let (redis, prefix, id) = (redis.to_owned(), prefix.to_owned(), id.to_owned());
    let shared_db = first.map(|f| f.config.database.url.clone());
    TestServer::start(Backend::Postgres, move |config: &mut Config| {
        config.cluster.redis_url = redis;
        config.cluster.key_prefix = prefix;
        config.cluster.node_id = id;
        config.cluster.secret = SECRET.into();
        config.auth.jwt_secret = "a shared secret of the cluster's nodes, 32+ bytes".into();
        // Browsers' pages come from the school's address, or from one of the nodes.
        config.http.public_origins = vec![
            classroomd::origin::PublicOrigin::parse("https://school.example")
                .expect("a valid origin"),
        ];
        if let Some(url) = shared_db {
            config.database.url = url;
        }
        tune(config);
    })
    .await
}

/// Another node of `first`'s cluster in a child process (the tests'
/// `env!("CARGO_BIN_EXE_test-server")`), so that a test can `kill -9` it: `first`'s
/// configuration (database, Redis and key prefix, secrets, capacity) with its own id and data
/// directory (`dir`).
pub async fn child_node(
    test_server: &str,
    first: &TestServer,
    id: &str,
    dir: &Path,
) -> ChildServer {
    let mut config = first.config.clone();
    config.cluster.node_id = id.to_owned();
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("a data directory");
    // classroomd wants its data directory private.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    std::fs::set_permissions(&data_dir, private).expect("made private");
    let file = dir.join("config.json");
    let json = serde_json::to_string(&config).expect("a configuration is JSON");
    std::fs::write(&file, json).expect("written");
    ChildServer::start_with(test_server, &data_dir, Some(&file)).await
}

/// `client`'s REST join of `lesson` asked of the node at `base`: its body.
pub async fn rest_join(client: &Client, base: &str, lesson: i64) -> Value {
    client
        .at(base)
        .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
        .await
        .expect(200)
        .clone()
}

/// Node `id` as `admin`'s node sees it in `GET /api/v1/cluster`, if it is listed.
pub async fn node_seen(admin: &Client, id: &str) -> Option<Value> {
    let body = admin.get("/api/v1/cluster").await.expect(200).clone();
    body["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
}

/// Polls `admin`'s node until `done` holds of node `id` as it sees it (`None`: not listed).
pub async fn until_node(admin: &Client, id: &str, done: impl Fn(Option<&Value>) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = node_seen(admin, id).await;
        if done(seen.as_ref()) {
            return;
        }
        assert!(Instant::now() < deadline, "node {id}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The participants node `id` reports while online, as `admin`'s node sees it.
pub fn participants(node: Option<&Value>) -> Option<u64> {
    node.filter(|n| n["online"] == true)
        .and_then(|n| n["load"]["participants"].as_u64())
}

/// Forgets the test's node records in the shared Redis.
pub async fn forget_nodes(prefix: &str) {
    let mut redis = redis::Client::open(SHARED_REDIS)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let () = redis::AsyncCommands::del(&mut redis, format!("{prefix}:nodes"))
        .await
        .expect("deleted");
}
