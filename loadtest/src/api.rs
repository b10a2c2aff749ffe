//! The REST calls that set up a run, as the admin and the teacher would make them: accounts,
//! a course with its enrollments, a lesson, and a join token per participant. Rate-limited
//! requests (429) are retried after the `Retry-After` the server asks for.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use thiserror::Error;

/// Password of every account the tool creates (they live only as long as the test server).
pub const PASSWORD: &str = "loadtest-password-1";
/// Give up on a request rate-limited this many times in a row.
const MAX_RETRIES: u32 = 20;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{method} {path}: {source}")]
    Http {
        method: Method,
        path: String,
        source: reqwest::Error,
    },
    #[error("{method} {path}: {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("{0}: the reply has no {1}")]
    Missing(String, &'static str),
}

/// A REST client, signed in once [`Api::login`] has succeeded.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same server, signed in as `email`.
    pub async fn login(&self, email: &str, password: &str) -> Result<Api, ApiError> {
        let path = "/api/v1/auth/login";
        let body = self
            .call(
                Method::POST,
                path,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        let token = body["token"]
            .as_str()
            .ok_or_else(|| ApiError::Missing(path.into(), "token"))?;
        Ok(Api {
            token: Some(token.to_string()),
            ..self.clone()
        })
    }

    /// Creates an account (admins) and returns its id.
    pub async fn create_user(&self, email: &str, name: &str, role: &str) -> Result<i64, ApiError> {
        let body = json!({"email": email, "name": name, "password": PASSWORD, "role": role});
        id(
            self.call(Method::POST, "/api/v1/users", Some(body)).await?,
            "/api/v1/users",
        )
    }

    /// Creates a course (teachers: they become its teacher) and returns its id.
    pub async fn create_course(&self, title: &str) -> Result<i64, ApiError> {
        let body = json!({"title": title, "description": "classroom-loadtest"});
        id(
            self.call(Method::POST, "/api/v1/courses", Some(body))
                .await?,
            "/api/v1/courses",
        )
    }

    pub async fn enroll(&self, course: i64, user: i64) -> Result<(), ApiError> {
        let path = format!("/api/v1/courses/{course}/enrollments");
        self.call(Method::POST, &path, Some(json!({"user_id": user})))
            .await?;
        Ok(())
    }

    /// Schedules a lesson in the course and returns its id.
    pub async fn create_lesson(&self, course: i64, title: &str) -> Result<i64, ApiError> {
        let path = format!("/api/v1/courses/{course}/lessons");
        let body = json!({"title": title, "starts_at": "2030-01-07T09:00:00Z", "ends_at": "2030-01-07T10:00:00Z"});
        id(self.call(Method::POST, &path, Some(body)).await?, &path)
    }

    /// A join token for the lesson's room, and where to signal when the room is on another
    /// node of a cluster.
    pub async fn join(&self, lesson: i64) -> Result<JoinTicket, ApiError> {
        let path = format!("/api/v1/lessons/{lesson}/join");
        let body = self.call(Method::POST, &path, None).await?;
        let token = body["token"]
            .as_str()
            .map(str::to_string)
            .ok_or(ApiError::Missing(path, "token"))?;
        Ok(JoinTicket {
            token,
            signaling_url: body["signaling_url"].as_str().map(str::to_string),
        })
    }

    /// The lesson's RTMP ingest: the URL an encoder publishes to (`{host}` filled in with
    /// this server's host) and a new stream key (the server shows a key only when it makes
    /// one; a previous key stops working). Teachers of the lesson only.
    pub async fn stream_key(&self, lesson: i64) -> Result<(String, String), ApiError> {
        let path = format!("/api/v1/lessons/{lesson}/stream-key");
        let body = self.call(Method::POST, &path, None).await?;
        let url = body["server_url"]
            .as_str()
            .ok_or_else(|| ApiError::Missing(path.clone(), "server_url"))?;
        let key = body["stream_key"]
            .as_str()
            .ok_or_else(|| ApiError::Missing(path.clone(), "stream_key"))?;
        let host = reqwest::Url::parse(&self.base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "127.0.0.1".into());
        Ok((url.replace("{host}", &host), key.to_owned()))
    }

    /// The server's Prometheus text (`/metrics`), if it answers.
    pub async fn metrics(&self) -> Option<String> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// Uploads a PDF to `course` as a document titled `title`; its id (it is converted next).
    pub async fn upload_pdf(
        &self,
        course: i64,
        title: &str,
        pdf: Vec<u8>,
    ) -> Result<i64, ApiError> {
        let path = format!("/api/v1/courses/{course}/documents?title={title}");
        let body = self
            .send(Method::POST, &path, Payload::File("application/pdf", pdf))
            .await?;
        id(body, &path)
    }

    /// A document as the API shows it (`state`, `pages`, ...).
    pub async fn document(&self, id: i64) -> Result<Value, ApiError> {
        self.call(Method::GET, &format!("/api/v1/documents/{id}"), None)
            .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let body = body.map_or(Payload::None, Payload::Json);
        self.send(method, path, body).await
    }

    async fn send(&self, method: Method, path: &str, body: Payload) -> Result<Value, ApiError> {
        let mut retries = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            request = match &body {
                Payload::None => request,
                Payload::Json(body) => request.json(body),
                Payload::File(content_type, bytes) => request
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(bytes.clone()),
            };
            let http_error = |source| ApiError::Http {
                method: method.clone(),
                path: path.to_string(),
                source,
            };
            let response = request.send().await.map_err(http_error)?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && retries < MAX_RETRIES {
                retries += 1;
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 60);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let text = response.text().await.map_err(http_error)?;
            if !status.is_success() {
                return Err(ApiError::Status {
                    method,
                    path: path.to_string(),
                    status,
                    body: text,
                });
            }
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }
}

/// What a request carries.
enum Payload {
    None,
    Json(Value),
    /// A file as the body, with its content type.
    File(&'static str, Vec<u8>),
}

fn id(body: Value, path: &str) -> Result<i64, ApiError> {
    body["id"]
        .as_i64()
        .ok_or_else(|| ApiError::Missing(path.to_string(), "id"))
}

/// The answer to a join: the token, and the signaling WebSocket of the lesson's home node when
/// it is another node (`None`: this server's `/ws`).
#[derive(Debug, Clone)]
pub struct JoinTicket {
    pub token: String,
    pub signaling_url: Option<String>,
}
