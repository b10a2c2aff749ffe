//! Memory pinned through the login: a release server grew from 240 to 927 MB under 60 logins
//! with 4 MiB "emails" from 3 addresses, because each raw email became a rate-limit key. Here
//! the same attack runs against a real `classroomd` process and its resident memory, read from
//! /proc, must stay flat (a generous bound: the old server kept 240 MiB of keys alone).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_classroomd");
const MIB: u64 = 1024 * 1024;

/// Kills the server if the test fails before it does.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of a process, in bytes, from /proc/PID/status.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// A login body whose email is a little under 4 MiB (under the old 4 MiB body limit, as the
/// attack was), different for each `n` so that each would have been a key of its own.
fn huge_login(n: usize) -> Vec<u8> {
    let local = format!("{n}-{}", "a".repeat(4 * MIB as usize - 1024));
    serde_json::json!({"email": format!("{local}@school.example"), "password": "guess"})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn sixty_logins_with_4_mib_emails_from_3_addresses_leave_memory_flat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(BIN)
        .args(["--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLASSROOM_MEDIA__UDP_ADDR", "127.0.0.1:0")
        .env("CLASSROOM_MEDIA__TCP_ADDR", "127.0.0.1:0")
        .env("CLASSROOM_RTMP__ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("classroomd runs");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let pid = server.0.id();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("a URL")
        .trim_end_matches('/')
        .to_string();
    let login = format!("{url}/api/v1/auth/login");
    let clients: Vec<reqwest::Client> = (1..=3)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .build()
                .expect("a client")
        })
        .collect();

    // Warm up: ordinary failed logins from each address (password hashing, pools, buffers).
    for client in &clients {
        for _ in 0..3 {
            let reply = client
                .post(&login)
                .json(&serde_json::json!({"email": "who@school.example", "password": "guess"}))
                .send()
                .await
                .expect("an answer");
            assert_eq!(reply.status().as_u16(), 401);
        }
    }
    let before = resident_bytes(pid);

    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for n in 0..60 {
        let client = &clients[n % 3];
        let outcome = match client
            .post(&login)
            .header("content-type", "application/json")
            .body(huge_login(n))
            .send()
            .await
        {
            Ok(reply) => reply.status().as_u16().to_string(),
            // Refused before the body was read, the server may close while it is still sent.
            Err(_) => "closed while sending".to_string(),
        };
        *answers.entry(outcome).or_default() += 1;
    }
    let after = resident_bytes(pid);
    let grown = after.saturating_sub(before);
    eprintln!(
        "resident memory {} MiB before, {} MiB after 60 logins with 4 MiB emails (+{} MiB); \
         answers {answers:?}",
        before / MIB,
        after / MIB,
        grown / MIB
    );
    assert!(
        grown < 64 * MIB,
        "memory grew by {} MiB; answers {answers:?}",
        grown / MIB
    );
    assert!(
        answers
            .keys()
            .all(|a| a == "413" || a == "closed while sending"),
        "huge logins are refused for their size: {answers:?}"
    );
    drop(server);
}
