//! Janus's HTTP API and its VideoRoom plugin, so that the same simulated participants (the same
//! str0m peers, clips and measurements) can load Janus for a side-by-side benchmark.
//!
//! A participant is one Janus session with one VideoRoom handle. Requests are POSTed to
//! `{url}/{session}/{handle}`; asynchronous replies (`joined`, `configured`, `attached`,
//! `started`) and their JSEP arrive through a long poll on `{url}/{session}`, which also keeps
//! the session alive. The teacher joins as the room's one publisher with a fixed feed id; a
//! student joins as a subscriber to that feed, answers Janus's offer and starts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The feed id the teacher publishes as (a room has one publisher in a lecture).
pub const TEACHER_FEED: u64 = 1;
/// Events a long poll asks for at once.
const MAX_EVENTS_PER_POLL: u32 = 10;
/// Janus answers a long poll with a keepalive after 30 s; wait a little longer for it.
const POLL_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Debug, Error)]
pub enum JanusError {
    #[error("{0}: {1}")]
    Http(String, reqwest::Error),
    #[error("{0}: Janus refused: {1}")]
    Refused(String, String),
    #[error("{0}: unexpected reply: {1}")]
    Unexpected(String, String),
    #[error("no {0} from Janus within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the Janus session ended")]
    Closed,
}

/// A VideoRoom room on a Janus server.
#[derive(Debug, Clone)]
pub struct Room {
    /// The API's base URL, e.g. `http://127.0.0.2:8088/janus`.
    pub url: String,
    pub id: u64,
}

static TRANSACTIONS: AtomicU64 = AtomicU64::new(1);

fn transaction() -> String {
    format!("lt{}", TRANSACTIONS.fetch_add(1, Ordering::Relaxed))
}

/// One Janus session with one VideoRoom handle, and the events its long poll delivers.
pub struct Session {
    http: reqwest::Client,
    url: String,
    session: u64,
    handle: u64,
    events: mpsc::UnboundedReceiver<Value>,
    poll: JoinHandle<()>,
}

impl Session {
    /// Creates a session and attaches the VideoRoom plugin.
    pub async fn open(http: &reqwest::Client, url: &str) -> Result<Session, JanusError> {
        let url = url.trim_end_matches('/').to_string();
        let created = post(http, &url, json!({"janus": "create"})).await?;
        let session = data_id(&created, "create")?;
        let attached = post(
            http,
            &format!("{url}/{session}"),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
        let handle = data_id(&attached, "attach")?;
        let (sender, events) = mpsc::unbounded_channel();
        let poll = tokio::spawn(long_poll(http.clone(), format!("{url}/{session}"), sender));
        Ok(Session {
            http: http.clone(),
            url,
            session,
            handle,
            events,
            poll,
        })
    }

    /// Sends a plugin request; returns the plugin's synchronous data (`create`, `exists` …), or
    /// `Null` when Janus only acknowledged it (the reply comes as an event).
    pub async fn request(&self, body: Value, jsep: Option<Value>) -> Result<Value, JanusError> {
        let mut message = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let reply = post(
            &self.http,
            &format!("{}/{}/{}", self.url, self.session, self.handle),
            message,
        )
        .await?;
        match reply["janus"].as_str() {
            Some("ack") => Ok(Value::Null),
            Some("success") => plugin_data(&reply, "request"),
            _ => Err(JanusError::Unexpected("request".into(), reply.to_string())),
        }
    }

    /// The next event whose plugin data has `videoroom == expected`; returns (data, jsep).
    /// Other events (`webrtcup`, `media`, updates) are skipped; a plugin error fails.
    pub async fn event(
        &mut self,
        expected: &'static str,
        wait: Duration,
    ) -> Result<(Value, Option<Value>), JanusError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                return Err(JanusError::Timeout(expected, wait));
            };
            let event = event.ok_or(JanusError::Closed)?;
            if event["janus"] == "hangup" || event["janus"] == "detached" {
                return Err(JanusError::Closed);
            }
            if event["janus"] != "event" {
                continue;
            }
            let data = plugin_data(&event, expected)?;
            if data["videoroom"] == expected {
                return Ok((data, event.get("jsep").cloned()));
            }
        }
    }

    /// Ends the session (and with it the handle and its PeerConnection).
    pub async fn destroy(self) {
        let _ = post(
            &self.http,
            &format!("{}/{}", self.url, self.session),
            json!({"janus": "destroy"}),
        )
        .await;
        self.poll.abort();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.poll.abort();
    }
}

/// Creates a VideoRoom room for one VP8 + Opus publisher with simulcast, as a lecture needs.
pub async fn create_room(http: &reqwest::Client, url: &str) -> Result<Room, JanusError> {
    let session = Session::open(http, url).await?;
    // Any id unlikely to clash with a room of an earlier run on the same Janus.
    let id = 1_000_000
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64 % 1_000_000_000);
    let data = session
        .request(
            json!({
                "request": "create",
                "room": id,
                "description": "classroom-loadtest",
                "publishers": 1,
                "audiocodec": "opus",
                "videocodec": "vp8",
                "notify_joining": false,
                "permanent": false,
            }),
            None,
        )
        .await?;
    session.destroy().await;
    if data["videoroom"] != "created" {
        return Err(JanusError::Unexpected(
            "create room".into(),
            data.to_string(),
        ));
    }
    Ok(Room {
        url: url.trim_end_matches('/').to_string(),
        id,
    })
}

/// The body of a JSEP offer or answer for Janus (candidates are in the SDP: no trickle).
pub fn jsep(kind: &str, sdp: String) -> Value {
    json!({"type": kind, "sdp": sdp, "trickle": false})
}

/// The publisher's offer. Our simulcast rids are listed lowest first (`q;h;f`, as browsers
/// that add encodings in that order do); Janus takes the first rid as the highest unless the
/// JSEP says `rid_order: "lmh"`, and would then forward the 180p layer as its "highest".
pub fn publisher_jsep(sdp: String) -> Value {
    let mut jsep = jsep("offer", sdp);
    jsep["rid_order"] = Value::String("lmh".into());
    jsep
}

/// The SDP of a JSEP of the given type.
pub fn jsep_sdp(jsep: Option<&Value>, kind: &'static str) -> Result<String, JanusError> {
    jsep.filter(|j| j["type"] == kind)
        .and_then(|j| j["sdp"].as_str())
        .map(str::to_string)
        .ok_or_else(|| JanusError::Unexpected(format!("{kind} JSEP"), "missing".into()))
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value, JanusError> {
    let what = body["janus"].as_str().unwrap_or("request").to_string();
    body["transaction"] = Value::String(transaction());
    let reply: Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| JanusError::Http(what.clone(), e))?
        .json()
        .await
        .map_err(|e| JanusError::Http(what.clone(), e))?;
    if reply["janus"] == "error" {
        return Err(JanusError::Refused(what, reply["error"].to_string()));
    }
    Ok(reply)
}

fn data_id(reply: &Value, what: &str) -> Result<u64, JanusError> {
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| JanusError::Unexpected(what.into(), reply.to_string()))
}

/// The plugin's data of a reply or event; a plugin-level error becomes `Refused`.
fn plugin_data(reply: &Value, what: &str) -> Result<Value, JanusError> {
    let data = &reply["plugindata"]["data"];
    if let Some(error) = data.get("error") {
        return Err(JanusError::Refused(what.into(), error.to_string()));
    }
    if data.is_null() {
        return Err(JanusError::Unexpected(what.into(), reply.to_string()));
    }
    Ok(data.clone())
}

/// Long-polls `{url}/{session}` and forwards every event until the receiver is gone or Janus
/// forgets the session.
async fn long_poll(http: reqwest::Client, url: String, events: mpsc::UnboundedSender<Value>) {
    let poll = format!("{url}?maxev={MAX_EVENTS_PER_POLL}");
    loop {
        let reply = async {
            http.get(&poll)
                .timeout(POLL_TIMEOUT)
                .send()
                .await?
                .json::<Value>()
                .await
        }
        .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(_) if events.is_closed() => return,
            Err(_) => {
                // A transient failure (or a timeout): poll again shortly.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let batch = match reply {
            Value::Array(batch) => batch,
            single => vec![single],
        };
        for event in batch {
            if event["janus"] == "error" {
                // The session is gone (destroyed, or timed out on Janus's side).
                return;
            }
            if event["janus"] != "keepalive" && events.send(event).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plugin_data_and_errors() {
        let ok =
            json!({"janus": "event", "plugindata": {"data": {"videoroom": "joined", "id": 1}}});
        assert_eq!(
            plugin_data(&ok, "join").expect("data")["videoroom"],
            "joined"
        );
        let refused = json!({"janus": "event", "plugindata": {"data": {"videoroom": "event", "error_code": 426, "error": "No such room"}}});
        assert!(matches!(
            plugin_data(&refused, "join"),
            Err(JanusError::Refused(_, e)) if e.contains("No such room")
        ));
        assert!(plugin_data(&json!({"janus": "ack"}), "x").is_err());
        assert_eq!(
            data_id(&json!({"data": {"id": 42}}), "create").ok(),
            Some(42)
        );
        assert!(data_id(&json!({"data": {}}), "create").is_err());
    }

    #[test]
    fn reads_jsep() {
        let offer = jsep("offer", "v=0".into());
        assert_eq!(jsep_sdp(Some(&offer), "offer").ok().as_deref(), Some("v=0"));
        assert!(jsep_sdp(Some(&offer), "answer").is_err());
        assert!(jsep_sdp(None, "offer").is_err());
    }
}
