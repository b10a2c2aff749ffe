//! Test harness for end-to-end tests: starts `classroomd` in-process on a free port with its
//! own fresh database (a temporary SQLite file, or a fresh PostgreSQL schema), and an HTTP
//! client that speaks to it exactly as an outside client would.

pub mod child;
pub mod cluster;
pub mod documents;
pub mod media;
pub mod metrics;
pub mod nginx;
pub mod relay;
pub mod school;
pub mod webhook;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;

use classroom_courses::Store;
use classroom_courses::auth::hash_password;
use classroom_courses::model::{Email, Password, PersonName};
use classroom_courses::store::NewUser;
use classroom_protocol::UserRole;
use classroomd::{Config, RunningServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the PostgreSQL tests connect (override with `TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh PostgreSQL schema, or `None` (after saying so) when PostgreSQL is unreachable
/// outside CI. In CI (`CI` set) an unreachable PostgreSQL fails the test: CI must run them.
pub async fn fresh_postgres_schema() -> Option<String> {
    use sqlx::Connection;
    let url = postgres_url();
    let mut conn = match sqlx::PgConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL at {url} is unreachable in CI: {e}");
            }
            eprintln!("skipped: PostgreSQL at {url} is unreachable ({e})");
            return None;
        }
    };
    let schema = format!("ct_{}", classroom_courses::auth::random_token(8));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("a fresh schema can be created");
    let _ = conn.close().await;
    Some(schema)
}

async fn drop_postgres_schema(schema: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// Media workers of the servers tests start: `CLASSROOM_TEST_MEDIA_WORKERS` (the media suite
/// runs with 1 and with 2, see scripts/test), else 1, the server as it was before workers. A
/// test that needs several sets `media.workers` itself.
pub fn media_workers() -> usize {
    std::env::var("CLASSROOM_TEST_MEDIA_WORKERS")
        .ok()
        .and_then(|workers| workers.parse().ok())
        .filter(|workers| *workers > 0)
        .unwrap_or(1)
}

/// A running server with its own data directory and database.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub config: Config,
    pub base: String,
    pub backend: Backend,
    schema: Option<String>,
    _data_dir: TempDir,
}

impl TestServer {
    /// Starts a server on `backend`, or returns `None` when PostgreSQL is unavailable
    /// outside CI. `tune` adjusts the configuration first.
    pub async fn start(backend: Backend, tune: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let data_dir = tempfile::tempdir().expect("a temporary data directory");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            ..Config::default()
        };
        config.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.media.udp_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.media.tcp_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.media.workers = media_workers();
        config.rtmp.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let schema = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let schema = fresh_postgres_schema().await?;
                config.database.url = format!("{}?options[search_path]={schema}", postgres_url());
                config.database.max_connections = 4;
                Some(schema)
            }
        };
        tune(&mut config);
        let server = classroomd::start(&config).await.expect("the server starts");
        let base = format!("http://{}", server.addr);
        Some(TestServer {
            server: Some(server),
            config,
            base,
            backend,
            schema,
            _data_dir: data_dir,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    pub fn store(&self) -> Store {
        self.server.as_ref().expect("running").store.clone()
    }

    /// A client without a token.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            token: None,
        }
    }

    /// A client without a token whose connections come from `source`, a loopback address
    /// such as 127.0.0.2 standing for another host.
    pub fn client_from(&self, source: std::net::IpAddr) -> Client {
        Client {
            http: reqwest::Client::builder()
                .local_address(source)
                .build()
                .expect("a client"),
            base: self.base.clone(),
            token: None,
        }
    }

    /// Creates a user directly in the store (as `classroomd user add` does) and signs in.
    pub async fn user(&self, role: UserRole, email: &str, name: &str) -> (Client, Value) {
        let password = "correct horse battery";
        let hash = hash_password(Password::parse(password).expect("valid"))
            .await
            .expect("hash");
        self.store()
            .create_user(
                NewUser {
                    email: Email::parse(email).expect("valid email"),
                    name: PersonName::parse(name).expect("valid name"),
                    role,
                    password_hash: hash,
                },
                time::OffsetDateTime::now_utc(),
            )
            .await
            .expect("user created");
        self.client().login(email, password).await
    }

    /// The UDP address the SFU's first media worker is bound to.
    pub fn media_addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").media_addr
    }

    /// Every media worker's UDP address, by worker index.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.server.as_ref().expect("running").media_addrs.clone()
    }

    /// Stops the server gracefully and drops its PostgreSQL schema.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("graceful stop");
        }
        if let Some(schema) = self.schema.take() {
            drop_postgres_schema(&schema).await;
        }
    }

    /// Stops the server but keeps its data, and starts a new one on the same data.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("graceful stop");
        }
        self.config.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = classroomd::start(&self.config)
            .await
            .expect("the server restarts");
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }
}

/// An HTTP client of the API, optionally signed in.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

/// A response: status, headers and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        &self.body
    }

    /// Asserts an error status and code, and that the body has a message a person can read.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.code(),
            code,
            "unexpected error code; body: {}",
            self.text
        );
        let message = self.body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.len() > 5,
            "error without a useful message: {}",
            self.text
        );
    }
}

impl Client {
    /// The same client (and token) pointed at another server address.
    pub fn at(&self, base: &str) -> Client {
        Client {
            base: base.to_string(),
            ..self.clone()
        }
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> (Client, Value) {
        let reply = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await;
        let body = reply.expect(200).clone();
        let token = body["token"].as_str().expect("a token").to_string();
        (self.with_token(&token), body["user"].clone())
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// Sends a raw body with the given content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.expect("the server answers")).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("the server answers")).await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Declares one test that runs against SQLite and again against PostgreSQL.
///
/// ```ignore
/// both_backends!(creates_courses, |server| async move { ... });
/// both_backends!(with_a_setting, tune = |config| config.auth.join_ttl_secs = 1, |server| ...);
/// ```
#[macro_export]
macro_rules! both_backends {
    ($name:ident, tune = $tune:expr, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                $crate::run_tuned($crate::Backend::Sqlite, $tune, $body).await;
            }

            #[tokio::test]
            async fn postgres() {
                $crate::run_tuned($crate::Backend::Postgres, $tune, $body).await;
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                $crate::run_on($crate::Backend::Sqlite, $body).await;
            }

            #[tokio::test]
            async fn postgres() {
                $crate::run_on($crate::Backend::Postgres, $body).await;
            }
        }
    };
}

/// Runs `body` against a fresh server on `backend`, then stops the server.
pub async fn run_on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: std::future::Future<Output = TestServer>,
{
    run_tuned(backend, |_| {}, body).await;
}

/// [`run_on`] with the configuration adjusted by `tune` first.
pub async fn run_tuned<F, Fut>(backend: Backend, tune: impl FnOnce(&mut Config), body: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: std::future::Future<Output = TestServer>,
{
    let Some(server) = TestServer::start(backend, tune).await else {
        return;
    };
    let server = body(server).await;
    server.stop().await;
}
