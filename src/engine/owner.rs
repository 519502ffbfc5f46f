//! Which mcpod process owns a container or a directory: a process named
//! across pid reuse (its start time and the boot), and the host it runs on.
//! The sweep and the build leftovers read it to tell a live owner's things
//! from an ended one's.

/// Who owns a container or a directory: a process, identified across pid reuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// The process start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start: String,
    pub boot_id: String,
    /// The machine ID of the host it runs on (empty on containers made
    /// before mcpod recorded it: taken as this host's).
    pub host: String,
}

impl Owner {
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: process_start(pid).unwrap_or_default(),
            boot_id: boot_id(),
            host: machine_id(),
        }
    }

    /// True when the process this names still runs (same boot, same start
    /// time), or runs on another host, which only that host can tell: its
    /// containers end with their lease.
    pub fn is_alive(&self) -> bool {
        if !self.host.is_empty() && self.host != machine_id() {
            return true;
        }
        self.boot_id == boot_id() && process_start(self.pid).as_deref() == Some(self.start.as_str())
    }
}

/// This host's machine ID (else its hostname).
pub fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of a live process; `None` when it is gone or a zombie.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_one_is_not() {
        let me = Owner::current();
        assert!(!me.start.is_empty() && !me.boot_id.is_empty());
        assert!(me.is_alive());
        let reused = Owner {
            start: "1".into(),
            ..me.clone()
        };
        assert!(
            !reused.is_alive(),
            "a different start time means a reused pid"
        );
        let other_boot = Owner {
            boot_id: "x".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
    }

    #[test]
    fn a_zombie_owner_is_dead() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        // Unreaped: a zombie once it exits.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(process_start(pid), None);
        let _ = child.wait();
    }
}
