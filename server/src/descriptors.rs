//! The process's limit on open descriptors (`RLIMIT_NOFILE`). Every HTTP connection, media
//! TCP connection, database connection and open file holds one; many systems start services
//! with a soft limit of 1024 while allowing far more (the hard limit).

use std::io;

/// The soft and hard limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl DescriptorLimit {
    /// The limits in force now.
    pub fn current() -> DescriptorLimit {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        DescriptorLimit {
            soft: limit.current,
            hard: limit.maximum,
        }
    }

    /// The soft limit as a number (unlimited counts as `u64::MAX`).
    pub fn soft_or_max(self) -> u64 {
        self.soft.unwrap_or(u64::MAX)
    }
}

/// Raises the soft limit to the hard limit, as far as the kernel allows, and returns the
/// limits before and after. `classroomd` does this at start so that its connection caps,
/// not the soft limit's default, decide how many clients it serves.
pub fn raise_to_hard_limit() -> io::Result<(DescriptorLimit, DescriptorLimit)> {
    let before = DescriptorLimit::current();
    if before.soft == before.hard {
        return Ok((before, before));
    }
    let raised = rustix::process::Rlimit {
        current: before.hard,
        maximum: before.hard,
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised) {
        // An unlimited hard limit cannot be the soft limit of NOFILE on Linux (the kernel
        // caps it at fs.nr_open): fall back to that.
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        match (before.hard, nr_open) {
            (None, Some(nr_open)) => rustix::process::setrlimit(
                rustix::process::Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(nr_open),
                    maximum: None,
                },
            )?,
            _ => return Err(e.into()),
        }
    }
    Ok((before, DescriptorLimit::current()))
}
