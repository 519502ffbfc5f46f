//! Descriptors a host process is given: a close-on-exec pipe, and a
//! descriptor passed at a fixed number across exec.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Give `command`'s process `fd` as its descriptor `at` (a `dup2` between
/// fork and exec, which leaves it open across exec). The caller keeps `fd`
/// open until the process has started.
pub fn pass_fd(
    command: &mut tokio::process::Command,
    fd: std::os::fd::RawFd,
    at: std::os::fd::RawFd,
) {
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if fd == at {
                // Already in place: just let it survive exec.
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, at) == -1 {
                // dup2 clears close-on-exec on the new descriptor.
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A close-on-exec pipe: (read, write).
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors on success, which we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}
