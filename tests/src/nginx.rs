//! A private nginx with the RTMP module, standing in for a third-party live service (YouTube,
//! Twitch): it accepts publishes on `rtmp://127.0.0.1:PORT/live/KEY`, refuses other
//! applications, and [`probe`] reads back what arrived with ffprobe. It can be stopped and
//! started again on the same port; it is stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub struct Nginx {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx on a free loopback port; `None` (after saying so) when nginx or its RTMP
    /// module is not installed outside CI. In CI a missing nginx fails the test.
    pub async fn start() -> Option<Nginx> {
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        if !std::path::Path::new(module).exists() || which("nginx").is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("nginx with the RTMP module is not installed (scripts/test installs it)");
            }
            eprintln!("skipped: nginx with the RTMP module is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             load_module {module};\nevents {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
             application live {{ live on; record off; }} }} }}\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf written");
        let mut nginx = Nginx {
            port,
            dir,
            child: None,
        };
        nginx.run().await;
        Some(nginx)
    }

    /// Starts the process (again) and waits until it accepts connections.
    pub async fn run(&mut self) {
        let dir = self.dir.path();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not listen: {}", self.log());
    }

    /// Stops the process (the service goes away; the port stays ours to start again).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `rtmp://127.0.0.1:PORT/APP`.
    pub fn url(&self, app: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What ffprobe sees in a live RTMP stream: `(codec, width, height)` per stream; empty when
/// nothing could be read within `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> Vec<(String, u64, u64)> {
    let run = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
            url,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let Ok(Ok(output)) = tokio::time::timeout(timeout, run).await else {
        return Vec::new();
    };
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    json["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or_default().to_owned(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.exists())
    })
}
