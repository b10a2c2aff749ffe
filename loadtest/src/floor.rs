//! The machine's floor: the CPU one bare UDP send costs, to compare a server's CPU per
//! forwarded packet with. One thread sends datagrams of a given size to a socket that another
//! thread drains; the sending thread's own CPU time (`/proc/thread-self/stat`) divided by the
//! sends is the floor. On loopback the kernel delivers to the receiving socket within the send,
//! as it does for a server's sends to local subscribers.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::usage;

#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub packets: u64,
    pub size: usize,
    /// Sends the kernel refused (a full buffer); they cost CPU all the same.
    pub send_errors: u64,
    /// Datagrams the draining thread received (fewer than sent when its buffer overflowed).
    pub received: u64,
    pub cpu_seconds: f64,
    pub cpu_us_per_send: f64,
    pub wall_secs: f64,
}

/// Sends `packets` datagrams of `size` bytes from and to `ip` and measures the sender's CPU.
pub fn measure(ip: IpAddr, size: usize, packets: u64) -> std::io::Result<FloorReport> {
    let sink = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    sink.set_read_timeout(Some(Duration::from_millis(200)))?;
    let to = sink.local_addr()?;
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let (done, received) = (done.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if sink.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    // Not all zeros, like an encrypted payload.
    let payload: Vec<u8> = (0..size).map(|i| (i * 131 % 251) as u8).collect();
    let mut send_errors = 0;
    let started = Instant::now();
    let before = usage::of_this_thread();
    for _ in 0..packets {
        if socket.send_to(&payload, to).is_err() {
            send_errors += 1;
        }
    }
    let after = usage::of_this_thread();
    let wall_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let _ = drain.join();
    let cpu_seconds = match (before, after) {
        (Some(b), Some(a)) => a - b,
        _ => 0.0,
    };
    Ok(FloorReport {
        packets,
        size,
        send_errors,
        received: received.load(Ordering::Relaxed),
        cpu_seconds,
        cpu_us_per_send: cpu_seconds * 1e6 / packets.max(1) as f64,
        wall_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_cpu_of_sends_on_loopback() {
        // Enough sends (each costs microseconds of CPU) to span several ticks of the kernel's
        // CPU clock (10 ms), whatever else the machine does: CPU time, not wall time.
        let packets = 20_000;
        let report = measure(IpAddr::from([127, 0, 0, 1]), 1200, packets).expect("loopback works");
        assert_eq!(report.packets, packets);
        assert!(report.received > 0, "{report:?}");
        assert!(
            report.cpu_seconds > 0.0,
            "the sender's CPU was read: {report:?}"
        );
        let per_send = report.cpu_seconds * 1e6 / packets as f64;
        assert!(
            (report.cpu_us_per_send - per_send).abs() < 1e-9,
            "{report:?}"
        );
    }
}
