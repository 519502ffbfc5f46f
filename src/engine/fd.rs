//! Descriptors a host process is given: a close-on-exec pipe, and a
//! descriptor passed at a fixed number across exec.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Give `command`'s process `fd` as its descriptor `at` (a `dup2` between
/// fork and exec, which leaves it open across exec). The caller keeps `fd`
/// open until the process has started.
pub fn pass_fd(command: &mut tokio::process::Command, fd: RawFd, at: RawFd) {
    pass_fds(command, &[(fd, at)]);
}

/// Give `command`'s process each `(fd, at)` pair's `fd` as its descriptor
/// `at`. Each `fd` is first copied above every target (close-on-exec), so a
/// source numbered like another pair's target is not overwritten before it
/// is moved. The caller keeps each `fd` open until the process has started.
pub fn pass_fds(command: &mut tokio::process::Command, pairs: &[(RawFd, RawFd)]) {
    let pairs: Vec<(RawFd, RawFd)> = pairs.to_vec();
    let above = pairs.iter().map(|p| p.0.max(p.1)).max().unwrap_or(0) + 1;
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and
    // exec, and no allocation: the copies go into a fixed array.
    unsafe {
        command.pre_exec(move || {
            let mut copies = [-1 as RawFd; 8];
            if pairs.len() > copies.len() {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            for (copy, (fd, _)) in copies.iter_mut().zip(&pairs) {
                *copy = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, above);
                if *copy == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (copy, (_, at)) in copies.iter().zip(&pairs) {
                // dup2 clears close-on-exec on the new descriptor; the copy
                // keeps it and closes at exec.
                if libc::dup2(*copy, *at) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// A pipe holding `text`, its read end moved to descriptor `at`.
    fn pipe_at(text: &str, at: RawFd) -> OwnedFd {
        let (read, write) = pipe().expect("pipe");
        std::fs::File::from(write)
            .write_all(text.as_bytes())
            .expect("write");
        // SAFETY: a descriptor number this test owns from here.
        unsafe {
            assert_eq!(libc::dup2(read.as_raw_fd(), at), at);
            OwnedFd::from_raw_fd(at)
        }
    }

    /// The pairs (50 → 51) and (51 → 52): moved in order, the first would
    /// overwrite the second's source before it is moved.
    #[tokio::test]
    async fn descriptors_whose_numbers_cross_arrive_where_asked() {
        let one = pipe_at("one", 50);
        let two = pipe_at("two", 51);
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "cat /dev/fd/51 /dev/fd/52"]);
        pass_fds(
            &mut command,
            &[(one.as_raw_fd(), 51), (two.as_raw_fd(), 52)],
        );
        let out = command.output().await.expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "onetwo");
    }
}
