//! A private nginx with the RTMP module, standing in for a third-party live service (YouTube,
//! Twitch): it accepts publishes on `rtmp://127.0.0.1:PORT/live/KEY`, refuses other
//! applications, and [`probe`] reads back what arrived with ffprobe. It can be stopped and
//! started again on the same port; it is stopped when dropped.
//!
//! With TLS in front ([`Nginx::start_with_tls`]), as `rtmps://` services are: nginx's `stream`
//! module terminates TLS and proxies to the RTMP port, once with a certificate from a test CA
//! (trusted by whoever is given [`TlsFront::ca`]) and once with a self-signed one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub struct Nginx {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// The TLS front's certificates, kept while nginx runs.
    certs: Option<TempDir>,
}

/// The TLS ports in front of the RTMP one.
pub struct TlsFront {
    /// The test CA's certificate (PEM): it signed the certificate of `trusted_port`.
    pub ca: PathBuf,
    /// TLS with a certificate for 127.0.0.1 signed by the test CA.
    pub trusted_port: u16,
    /// TLS with a self-signed certificate for 127.0.0.1: no CA vouches for it.
    pub untrusted_port: u16,
}

impl TlsFront {
    /// `rtmps://127.0.0.1:PORT/APP`.
    pub fn url(&self, port: u16, app: &str) -> String {
        format!("rtmps://127.0.0.1:{port}/{app}")
    }
}

const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

impl Nginx {
    /// Starts nginx on a free loopback port; `None` (after saying so) when nginx or its RTMP
    /// module is not installed outside CI. In CI a missing nginx fails the test.
    pub async fn start() -> Option<Nginx> {
        Self::start_with("").await
    }

    /// Like [`Nginx::start`], with TLS ports in front (certificates made here with openssl);
    /// `None` when nginx's stream module is not installed outside CI.
    pub async fn start_with_tls() -> Option<(Nginx, TlsFront)> {
        if !std::path::Path::new(STREAM_MODULE).exists() || which("openssl").is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("nginx's stream module or openssl is missing (scripts/test installs them)");
            }
            eprintln!("skipped: nginx's stream module (libnginx-mod-stream) is not installed");
            return None;
        }
        let certs = tempfile::tempdir().expect("a temporary directory");
        let front = make_certificates(certs.path());
        let (trusted, untrusted) = (free_port(), free_port());
        let dir = certs.path().display();
        let tls = format!(
            "load_module {STREAM_MODULE};\n\
             stream {{\n\
             server {{ listen 127.0.0.1:{trusted} ssl; ssl_certificate {dir}/leaf.pem; \
             ssl_certificate_key {dir}/leaf.key; proxy_pass 127.0.0.1:{{rtmp}}; }}\n\
             server {{ listen 127.0.0.1:{untrusted} ssl; ssl_certificate {dir}/self.pem; \
             ssl_certificate_key {dir}/self.key; proxy_pass 127.0.0.1:{{rtmp}}; }}\n}}\n"
        );
        let mut nginx = Self::start_with(&tls).await?;
        for port in [trusted, untrusted] {
            let mut listening = false;
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    listening = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                listening,
                "nginx's TLS front did not listen on {port}: {}",
                nginx.log()
            );
        }
        let front = TlsFront {
            ca: front,
            trusted_port: trusted,
            untrusted_port: untrusted,
        };
        nginx.certs = Some(certs);
        Some((nginx, front))
    }

    /// `extra`: more configuration at the top level, `{rtmp}` standing for the RTMP port.
    async fn start_with(extra: &str) -> Option<Nginx> {
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        if !std::path::Path::new(module).exists() || which("nginx").is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("nginx with the RTMP module is not installed (scripts/test installs it)");
            }
            eprintln!("skipped: nginx with the RTMP module is not installed");
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             load_module {module};\n{extra}events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
             application live {{ live on; record off; }} }} }}\n",
            dir = dir.path().display(),
            extra = extra.replace("{rtmp}", &port.to_string()),
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf written");
        let mut nginx = Nginx {
            port,
            dir,
            child: None,
            certs: None,
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

/// What ffprobe made of a live RTMP stream.
#[derive(Debug)]
pub enum Probe {
    /// `(codec, width, height)` per stream.
    Streams(Vec<(String, u64, u64)>),
    /// ffprobe was still waiting for a stream when its time was up (nginx-rtmp holds a player
    /// of a stream nobody publishes).
    NothingWithin(Duration),
    /// ffprobe could not run, or failed (connection refused, bad answer): with its words.
    Failed(String),
}

impl Probe {
    /// The streams seen; none unless ffprobe read some.
    pub fn streams(&self) -> &[(String, u64, u64)] {
        match self {
            Probe::Streams(streams) => streams,
            _ => &[],
        }
    }

    /// Nothing is published at the URL: the service answered and had no stream. Not true of
    /// a probe that failed, so a broken nginx or ffprobe cannot pass for "stopped".
    pub fn nothing_published(&self) -> bool {
        match self {
            Probe::Streams(streams) => streams.is_empty(),
            Probe::NothingWithin(_) => true,
            Probe::Failed(_) => false,
        }
    }
}

/// Asks ffprobe what a live RTMP stream holds, waiting at most `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> Probe {
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
    let output = match tokio::time::timeout(timeout, run).await {
        Err(_) => return Probe::NothingWithin(timeout),
        Ok(Err(e)) => return Probe::Failed(format!("ffprobe did not start: {e}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Probe::Failed(format!(
            "ffprobe {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let json: Value = match serde_json::from_slice(&output.stdout) {
        Ok(json) => json,
        Err(e) => return Probe::Failed(format!("ffprobe printed no JSON: {e}")),
    };
    let streams = json["streams"]
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
        .collect();
    Probe::Streams(streams)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A test CA and a certificate for 127.0.0.1 it signed (`leaf`), and a self-signed one for
/// 127.0.0.1 (`self`), as PEM files in `dir`; returns the CA's certificate.
fn make_certificates(dir: &std::path::Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &[
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=classroom test CA",
        ][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat();
    openssl(&ca);
    let csr = [
        &["req", "-subj", "/CN=127.0.0.1"][..],
        &ec,
        &["-keyout", "leaf.key", "-out", "leaf.csr"],
    ]
    .concat();
    openssl(&csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("leaf.ext written");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    let self_signed = [
        &["req", "-x509", "-days", "2", "-subj", "/CN=127.0.0.1"][..],
        &ec,
        &["-keyout", "self.key", "-out", "self.pem"],
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    ]
    .concat();
    openssl(&self_signed);
    dir.join("ca.pem")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.exists())
    })
}
