//! CPU seconds and memory of a process: from `/proc/<pid>` when it runs on this machine (the
//! server given by `--server-pid` or found by name, and the tool itself), else from the
//! server's `/metrics` (`process_cpu_seconds_total`, `process_resident_memory_bytes`).

use serde::Serialize;

/// Linux's USER_HZ: `/proc/<pid>/stat` counts CPU time in these ticks (100 on every
/// architecture Linux exposes it for).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_bytes: Option<u64>,
}

/// Where the server's numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    Proc,
    Metrics,
    None,
}

/// The usage of process `pid` (`None`: this process), or `None` if it cannot be read.
pub fn of_pid(pid: Option<u32>) -> Option<Usage> {
    let dir = pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"));
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok();
    Some(Usage {
        cpu_seconds: cpu_from_stat(&stat)?,
        rss_bytes: status.as_deref().and_then(rss_from_status),
    })
}

/// CPU seconds of the living children of `pid` by process id (classroomd's ffmpeg
/// transcoders), from `/proc/<child>/stat` (field 4 is the parent).
pub fn children_cpu(pid: u32) -> std::collections::BTreeMap<u32, f64> {
    let mut children = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if parent_from_stat(&stat) == Some(pid)
            && let Some(cpu) = cpu_from_stat(&stat)
        {
            children.insert(child, cpu);
        }
    }
    children
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line.
pub fn parent_from_stat(stat: &str) -> Option<u32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds of the calling thread (`/proc/thread-self/stat`).
pub fn of_this_thread() -> Option<f64> {
    cpu_from_stat(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn cpu_from_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// `VmRSS` of a `/proc/<pid>/status`, in bytes.
pub fn rss_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process listening on TCP `port` on this machine (the server we were given, not just
/// any `classroomd`: several may run), found through its socket's inode in `/proc`.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|table| listening_inode(&table, port))?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
                })
            })
        })
}

/// The inode of the socket listening on `port` in a `/proc/net/tcp` table.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        let listening = *fields.get(3)? == "0A";
        (listening && u16::from_str_radix(local_port, 16).ok()? == port)
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// Process usage from Prometheus text, if it has the standard `process_*` metrics.
pub fn from_metrics(text: &str) -> Option<Usage> {
    let value = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    Some(Usage {
        cpu_seconds: value("process_cpu_seconds_total")?,
        rss_bytes: value("process_resident_memory_bytes").map(|b| b as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent() {
        let stat = "42 (ff (mpeg)) S 7 42 42 0 -1 4194304 1 0 0 0 150 50 0 0 20 0 1 0";
        assert_eq!(parent_from_stat(stat), Some(7));
        let me = std::process::id();
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let found = children_cpu(me).contains_key(&child.id());
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "our child is found");
    }

    #[test]
    fn reads_proc_stat_even_with_odd_names() {
        let stat = "1234 (class (roo) md) S 1 1234 1234 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_from_stat(stat), Some(3.0));
        assert_eq!(cpu_from_stat("garbage"), None);
        assert_eq!(cpu_from_stat("1 (x) S 1"), None);
    }

    #[test]
    fn reads_rss_and_metrics() {
        assert_eq!(
            rss_from_status("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(rss_from_status("Name:\tx\n"), None);
        let text = "# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 12.5\nprocess_resident_memory_bytes 1.048576e6\n";
        assert_eq!(
            from_metrics(text),
            Some(Usage {
                cpu_seconds: 12.5,
                rss_bytes: Some(1_048_576)
            })
        );
        assert_eq!(from_metrics("other 1\n"), None);
    }

    #[test]
    fn finds_the_listening_socket() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0";
        assert_eq!(listening_inode(table, 8080), Some(4242));
        assert_eq!(listening_inode(table, 8081), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let port = listener.local_addr().expect("bound").port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
    }

    #[test]
    fn reads_this_process() {
        let usage = of_pid(None).expect("/proc/self is readable");
        assert!(usage.rss_bytes.is_some_and(|b| b > 0));
    }
}
