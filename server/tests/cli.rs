//! The `classroomd` binary as an operator uses it: create the first admin from the command
//! line, start the server, sign in, stop it with SIGTERM; and refuse bad configuration.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_classroomd");

/// A command with a clean environment (no CLASSROOM_* of the caller) in `dir`.
fn classroomd(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn add_user(dir: &Path, args: &[&str], password: &str) -> std::process::Output {
    let mut child = classroomd(dir)
        .args(["user", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("classroomd runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("password written");
    child.wait_with_output().expect("classroomd finishes")
}

/// Kills the server if a test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn first_admin_from_the_command_line_then_serve_and_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = add_user(
        dir.path(),
        &[
            "--role",
            "admin",
            "--email",
            "Head@School.edu",
            "--name",
            "Head Teacher",
        ],
        "a long admin password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin head@school.edu"));
    assert!(
        dir.path().join("data/classroom.db").exists(),
        "the default data directory is ./data"
    );

    let again = add_user(
        dir.path(),
        &[
            "--role",
            "admin",
            "--email",
            "head@school.edu",
            "--name",
            "X",
        ],
        "another password\n",
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let short = add_user(
        dir.path(),
        &[
            "--role",
            "student",
            "--email",
            "s@school.edu",
            "--name",
            "S",
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let empty = add_user(
        dir.path(),
        &[
            "--role",
            "student",
            "--email",
            "s@school.edu",
            "--name",
            "S",
        ],
        "",
    );
    assert!(String::from_utf8_lossy(&empty.stderr).contains("standard input"));

    // `classroomd` with no subcommand serves; it prints where to open it.
    let mut child = classroomd(dir.path())
        .args(["--http-addr", "127.0.0.1:0"])
        // Free media ports: another server (or test) may hold the default 8443.
        .env("CLASSROOM_MEDIA__UDP_ADDR", "127.0.0.1:0")
        .env("CLASSROOM_MEDIA__TCP_ADDR", "127.0.0.1:0")
        .env("CLASSROOM_RTMP__ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("classroomd runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("a URL")
        .trim_end_matches('/')
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let client = reqwest::Client::new();
    let login = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "head@school.edu", "password": "a long admin password"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(login.status().as_u16(), 200);

    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs")
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "classroomd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "a graceful stop exits 0: {status}");
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("classroomd.toml"),
        "[http]\nadress = \"127.0.0.1:1\"\n",
    )
    .expect("write");
    let out = classroomd(dir.path()).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("adress"), "{stderr}");

    std::fs::remove_file(dir.path().join("classroomd.toml")).expect("remove");
    let out = classroomd(dir.path())
        .env("CLASSROOM_AUTH__JOIN_TTL_SECS", "soon")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.join_ttl_secs"), "{stderr}");

    let out = classroomd(dir.path())
        .args(["--config", "missing.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));

    let out = classroomd(dir.path())
        .args(["--database-url", "mysql://x/y"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

/// The (soft, hard) "Max open files" of a process, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("its limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft").to_string();
    let hard = fields.next().expect("hard").to_string();
    (soft, hard)
}

#[test]
fn classroomd_raises_its_open_file_limit_to_the_hard_limit() {
    let (_, hard) = open_file_limits(std::process::id());
    let hard_number: u64 = hard.parse().expect("a finite hard limit here");
    assert!(
        hard_number > 128,
        "the hard limit leaves room to lower: {hard}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // prlimit runs classroomd (same pid: it execs) with the soft limit lowered to 128.
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile=128:{hard}"))
        .arg(BIN)
        .args(["--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLASSROOM_MEDIA__UDP_ADDR", "127.0.0.1:0")
        .env("CLASSROOM_MEDIA__TCP_ADDR", "127.0.0.1:0")
        .env("CLASSROOM_RTMP__ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs classroomd");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    assert!(line.contains("classroomd is running"), "{line}");
    assert_eq!(
        open_file_limits(server.0.id()),
        (hard.clone(), hard.clone()),
        "the soft limit was raised to the hard one"
    );
    drop(server);
    let mut log = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log).expect("its log");
    assert!(
        log.contains("open descriptor limit") && log.contains("128"),
        "the limits are logged: {log}"
    );
}
