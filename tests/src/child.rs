//! A `classroomd` in a child process (the `test-server` binary), for the tests that must
//! `kill -9` a server, which an in-process one cannot show.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The child server; killed when dropped if the test did not kill it first.
pub struct ChildServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ChildServer {
    /// Starts `test_server` (the tests' `env!("CARGO_BIN_EXE_test-server")`) on `data_dir` and
    /// waits until it says where it listens.
    pub async fn start(test_server: &str, data_dir: &Path) -> ChildServer {
        Self::start_with(test_server, data_dir, None).await
    }

    /// [`ChildServer::start`] with the configuration in `config` (a JSON file) instead of the
    /// built-in one.
    pub async fn start_with(
        test_server: &str,
        data_dir: &Path,
        config: Option<&Path>,
    ) -> ChildServer {
        let mut command = Command::new(test_server);
        command.arg(data_dir);
        if let Some(config) = config {
            command.arg(config);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("the child starts");
        let stdout = child.stdout.take().expect("its output");
        let base = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| {
                    line.strip_prefix("LISTENING ")
                        .map(|b| b.trim().to_string())
                })
        })
        .await
        .expect("reads")
        .expect("the child says where it listens");
        ChildServer { child, base }
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
