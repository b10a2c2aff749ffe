//! Running a converter (LibreOffice, poppler's tools) under a deadline. Each runs in a
//! process group of its own, so that when the deadline passes the whole group is killed:
//! `soffice` is a script that starts `soffice.bin`, and killing only the script would leave
//! the converter running. Output goes to files in the job's work folder, never to pipes
//! nobody reads (a chatty converter would block on a full pipe until the deadline).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a running converter is checked on.
const POLL: Duration = Duration::from_millis(25);

/// Why a converter did not finish well.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within the time limit and was stopped")]
    TimedOut { program: String },
    #[error("cannot follow {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

/// What a finished converter left: its exit status, what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `command` under an address-space limit of `bytes` (`ulimit -v` in a shell that then
/// becomes the program), so that a document that makes a converter grow without end fails
/// with an allocation error instead of taking the machine's memory from the lessons.
pub fn with_memory_limit(command: &Command, bytes: u64) -> Command {
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        // $0 is the limit in KiB, "$@" the program and its arguments, passed as they are.
        .arg(r#"ulimit -v "$0" && exec "$@""#)
        .arg((bytes / 1024).max(1).to_string())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        limited.current_dir(dir);
    }
    limited
}

/// Runs `command` until it exits or `deadline` passes (then its process group is killed).
/// `logs` is a folder for its output, read back when it exits.
pub fn run(
    mut command: Command,
    name: &str,
    logs: &Path,
    deadline: Instant,
) -> Result<Finished, RunError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let spawn_err = |source| RunError::Spawn {
        program: program.clone(),
        source,
    };
    let out_path = logs.join(format!("{name}.out"));
    let err_path = logs.join(format!("{name}.err"));
    let stdout = std::fs::File::create(&out_path).map_err(spawn_err)?;
    let stderr = std::fs::File::create(&err_path).map_err(spawn_err)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let group = rustix::process::Pid::from_child(&child);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // The group's id is the child's pid (process_group(0)); its members may
                // outlive the child, so the group goes first, then the child is reaped.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut { program });
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(source) => {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.wait();
                return Err(RunError::Wait { program, source });
            }
        }
    };
    // Whatever the converter left behind in its group (a forked helper) goes too.
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let read = |path: &Path| {
        std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    Ok(Finished {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_group_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("sleeper.pid");
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "sleep 300 & echo $! > {}; wait",
            pid_file.display()
        ));
        let started = Instant::now();
        let result = run(
            command,
            "hang",
            dir.path(),
            started + Duration::from_millis(500),
        );
        assert!(
            matches!(result, Err(RunError::TimedOut { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pid_file).expect("the sleeper's pid");
        let stat = format!("/proc/{}/stat", pid.trim());
        // Gone, or a zombie waiting for a reaper that is not us.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::read_to_string(&stat) {
                Err(_) => break,
                Ok(s) if s.contains(") Z ") => break,
                Ok(_) if Instant::now() > deadline => panic!("the sleeper survived"),
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    #[test]
    fn a_converter_that_grows_past_its_memory_limit_fails_and_one_within_it_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let deadline = || Instant::now() + Duration::from_secs(20);
        // 256 MiB in one allocation: refused under a 64 MiB limit, fine under 1 GiB.
        let mut grow = Command::new("python3");
        grow.arg("-c")
            .arg("b = bytearray(256 << 20); print('grew', len(b))")
            .env("CLASSROOM_TEST", "kept");
        let refused = run(
            with_memory_limit(&grow, 64 << 20),
            "grow",
            dir.path(),
            deadline(),
        )
        .expect("it runs");
        assert!(!refused.status.success(), "{refused:?}");
        assert!(refused.stderr.contains("MemoryError"), "{refused:?}");
        let fine = run(
            with_memory_limit(&grow, 1 << 30),
            "fine",
            dir.path(),
            deadline(),
        )
        .expect("it runs");
        assert!(fine.status.success(), "{fine:?}");
        assert_eq!(fine.stdout.trim(), format!("grew {}", 256 << 20));
        // Arguments with spaces and the environment pass through unchanged.
        let mut echo = Command::new("sh");
        echo.arg("-c")
            .arg(r#"printf '%s|' "$0" "$CLASSROOM_TEST""#)
            .arg("two words")
            .env("CLASSROOM_TEST", "kept");
        let echoed = run(
            with_memory_limit(&echo, 1 << 30),
            "echo",
            dir.path(),
            deadline(),
        )
        .expect("it runs");
        assert_eq!(echoed.stdout, "two words|kept|");
    }

    #[test]
    fn output_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new("sh");
        command.arg("-c").arg("echo out; echo err >&2; exit 3");
        let finished = run(
            command,
            "echo",
            dir.path(),
            Instant::now() + Duration::from_secs(10),
        )
        .expect("it runs");
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.stdout, "out\n");
        assert_eq!(finished.stderr, "err\n");
    }
}
