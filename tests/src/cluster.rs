//! Nodes of one school in a test: each a `classroomd` on PostgreSQL (one database shared by
//! the nodes) and a real Redis under a fresh key prefix.

use classroomd::config::Config;

use crate::{Backend, TestServer};

/// The Redis every machine of ours runs.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

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
