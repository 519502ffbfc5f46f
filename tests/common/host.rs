//! One lock over the host's session containers (of this user's podman),
//! across test processes.
//!
//! Every `mcpod serve` sweeps the whole host for session containers whose
//! owner died, in the background, soon after it starts. A test that leaves an
//! orphan on purpose (to watch the sweep or the lease) holds this lock
//! exclusively while the orphan exists; every other mcpod a test starts holds
//! it shared for as long as it runs. So no other test's mcpod sweeps an orphan
//! a test is watching, whichever binary or process it runs in (nextest runs
//! each test in a process of its own).

use std::fs::File;
use std::os::fd::AsRawFd;

pub struct HostLock(File);

impl HostLock {
    pub fn shared() -> HostLock {
        Self::take(libc::LOCK_SH)
    }

    pub fn exclusive() -> HostLock {
        Self::take(libc::LOCK_EX)
    }

    fn take(mode: libc::c_int) -> HostLock {
        // Per user: each user's podman has containers of its own.
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let path = std::env::temp_dir().join(format!("mcpod-tests-host-{uid}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: flock on a descriptor this File owns; released when it closes.
        while unsafe { libc::flock(file.as_raw_fd(), mode) } != 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::Interrupted,
                "flock {}: {err}",
                path.display()
            );
        }
        HostLock(file)
    }
}
