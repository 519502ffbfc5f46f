//! Running one external program: argv only (never a shell string), an
//! allow-listed environment (see `env.rs`), a working directory of mcpod's
//! own (see `home.rs`), a deadline,
//! cancellation that asks the program to stop (SIGTERM, then SIGKILL after a
//! grace period), line streaming for progress, and bounded stdout and stderr
//! tails that a failure quotes, each labelled.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// How many bytes of stderr, and of stdout, an error keeps.
pub const TAIL_BYTES: usize = 4096;
/// How long a program gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// A callback that sees every output line (stdout and stderr) as it arrives.
pub type LineSink = Box<dyn FnMut(&str) + Send>;

/// One invocation of an external program.
pub struct Invocation {
    program: &'static str,
    args: Vec<OsString>,
    timeout: Option<Duration>,
    cancel: Option<CancellationToken>,
    on_line: Option<LineSink>,
    stdin: Option<Vec<u8>>,
    dir: Option<std::path::PathBuf>,
    /// Cancel this token once stdout and stderr together pass this many bytes.
    stop_past: Option<(u64, CancellationToken)>,
}

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    /// All of stdout; with a line sink ([`Invocation::on_line`]), its last
    /// [`TAIL_BYTES`] only.
    pub stdout: String,
    pub stderr_tail: String,
}

impl Invocation {
    pub fn new(program: &'static str) -> Self {
        Invocation {
            program,
            args: Vec::new(),
            timeout: None,
            cancel: None,
            on_line: None,
            stdin: None,
            dir: None,
            stop_past: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Stream every line of stdout and stderr to `sink` (stdout is then kept
    /// as a tail only, for a failure to quote).
    pub fn on_line(mut self, sink: LineSink) -> Self {
        self.on_line = Some(sink);
        self
    }

    /// Cancel `token` once the program has printed more than `bytes` on
    /// stdout and stderr together, every byte counted (the rest of a line
    /// cut for the sink too, and a line that never ends); with
    /// [`Invocation::cancel_on`] the same token, that stops it.
    pub fn stop_past(mut self, bytes: u64, token: CancellationToken) -> Self {
        self.stop_past = Some((bytes, token));
        self
    }

    /// Run in `dir` (a directory of mcpod's own) instead of [`super::home::work_dir`].
    pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// The command line, for messages (quoted where needed).
    pub fn display(&self) -> String {
        let mut out = String::from(self.program);
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            out.push(' ');
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                out.push_str(&format!("{arg:?}"));
            } else {
                out.push_str(&arg);
            }
        }
        out
    }

    /// Run to completion; a non-zero exit is [`Error::CommandFailed`].
    pub async fn run(self) -> Result<Output> {
        let display = self.display();
        let (status, output) = self.run_inner(&display).await?;
        if status.success() {
            Ok(output)
        } else {
            Err(failed(&display, status, &output))
        }
    }

    /// Run and parse stdout as JSON.
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let display = self.display();
        let out = self.run().await?;
        parse_json(&display, &out.stdout)
    }

    /// Run and parse stdout as a JSON list, where empty output or `null` is none.
    pub async fn json_list<T: serde::de::DeserializeOwned>(self) -> Result<Vec<T>> {
        let display = self.display();
        let out = self.run().await?;
        if out.stdout.trim().is_empty() {
            return Ok(Vec::new());
        }
        parse_json::<Option<Vec<T>>>(&display, &out.stdout).map(Option::unwrap_or_default)
    }

    /// Run a lookup: `Ok(None)` when it fails because the thing is not there
    /// (stderr says one of `absent`), the parsed stdout when it succeeds.
    pub async fn lookup<T: serde::de::DeserializeOwned>(
        self,
        absent: &[&str],
    ) -> Result<Option<T>> {
        let display = self.display();
        let (status, out) = self.status().await?;
        if status.success() {
            return parse_json(&display, &out.stdout).map(Some);
        }
        if absent.iter().any(|a| out.stderr_tail.contains(a)) {
            return Ok(None);
        }
        Err(failed(&display, status, &out))
    }

    /// Run to completion for its effect: `Ok` when it succeeds, or when it
    /// fails because the thing is not there (stderr says one of `absent`).
    pub async fn run_unless_absent(self, absent: &[&str]) -> Result<()> {
        let display = self.display();
        let (status, out) = self.run_inner(&display).await?;
        if status.success() || absent.iter().any(|a| out.stderr_tail.contains(a)) {
            return Ok(());
        }
        Err(failed(&display, status, &out))
    }

    /// Run to completion and return the exit status with the output, whatever it was.
    pub async fn status(self) -> Result<(std::process::ExitStatus, Output)> {
        let display = self.display();
        self.run_inner(&display).await
    }

    async fn run_inner(mut self, display: &str) -> Result<(std::process::ExitStatus, Output)> {
        let mut command = host_command(self.program);
        command
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| spawn_error(self.program, e))?;

        if let (Some(bytes), Some(mut pipe)) = (self.stdin.take(), child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            tokio::spawn(async move {
                let _ = pipe.write_all(&bytes).await;
            });
        }

        let printed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stdout = (child.stdout.take()).map(|p| Counted::new(p, &printed, &self.stop_past));
        let stderr = (child.stderr.take()).map(|p| Counted::new(p, &printed, &self.stop_past));
        let sink = std::sync::Arc::new(std::sync::Mutex::new(self.on_line.take()));
        let whole_stdout = sink.lock().map(|s| s.is_none()).unwrap_or(true);
        let out_task = tokio::spawn(read_lines(
            stdout,
            sink.clone(),
            if whole_stdout { usize::MAX } else { TAIL_BYTES },
        ));
        let err_task = tokio::spawn(read_lines(stderr, sink, TAIL_BYTES));

        let cancel = self.cancel.clone().unwrap_or_default();
        let deadline = async {
            match self.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let status = tokio::select! {
            status = child.wait() => status.map_err(|e| Error::io("waiting for", self.program, e))?,
            _ = cancel.cancelled() => {
                stop(&mut child).await;
                return Err(Error::Cancelled { what: format!("`{display}`") });
            }
            _ = deadline => {
                stop(&mut child).await;
                return Err(Error::Timeout {
                    command: display.to_string(),
                    secs: self.timeout.map(|t| t.as_secs()).unwrap_or_default(),
                });
            }
        };
        let stdout = out_task.await.unwrap_or_default();
        let stderr_tail = err_task.await.unwrap_or_default().text;
        if stdout.overflowed {
            return Err(Error::UnexpectedOutput {
                command: display.to_string(),
                reason: format!("it printed more than {MAX_OUTPUT_BYTES} bytes"),
            });
        }
        let stdout = stdout.text;
        Ok((
            status,
            Output {
                stdout,
                stderr_tail,
            },
        ))
    }
}

/// The one way mcpod makes a host process: `program` with the allow-listed
/// environment ([`super::env::host_env`]) and, as its working directory, the
/// empty directory of mcpod's own ([`super::home::work_dir`]), never mcpod's
/// (the agent's workspace). Its stdin is null unless the caller sets one.
/// `tests/host_processes.rs` checks that nothing else in mcpod spawns.
pub fn host_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .envs(super::env::host_env())
        .current_dir(super::home::work_dir())
        .stdin(std::process::Stdio::null());
    command
}

/// Ask the program to stop (SIGTERM, so buildah can remove its working
/// containers), then kill it if it does not exit within the grace period.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// A pipe whose bytes are counted as they are read, into a count shared
/// with the program's other pipe; past the bound, its token is cancelled.
struct Counted<R> {
    pipe: R,
    printed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    bound: Option<(u64, CancellationToken)>,
}

impl<R> Counted<R> {
    fn new(
        pipe: R,
        printed: &std::sync::Arc<std::sync::atomic::AtomicU64>,
        bound: &Option<(u64, CancellationToken)>,
    ) -> Self {
        Counted {
            pipe,
            printed: printed.clone(),
            bound: bound.clone(),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.pipe).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            let total = self
                .printed
                .fetch_add(read, std::sync::atomic::Ordering::Relaxed)
                + read;
            if let Some((bound, token)) = &self.bound
                && total > *bound
            {
                token.cancel();
            }
        }
        polled
    }
}

/// What a pipe said: what was kept of it, and whether more was dropped.
#[derive(Default)]
struct Kept {
    text: String,
    overflowed: bool,
}

/// Stream `pipe` to `sink` a bounded line at a time; keep the last
/// `keep_limit` bytes, or everything up to [`MAX_OUTPUT_BYTES`] when
/// `keep_limit` is `usize::MAX` (a program's stdout, to be parsed).
async fn read_lines(
    pipe: Option<impl AsyncRead + Unpin>,
    sink: std::sync::Arc<std::sync::Mutex<Option<LineSink>>>,
    keep_limit: usize,
) -> Kept {
    let Some(pipe) = pipe else {
        return Kept::default();
    };
    let whole = keep_limit == usize::MAX;
    let mut lines = BoundedLines::new(pipe, if whole { MAX_OUTPUT_BYTES } else { LINE_BYTES });
    let mut kept = Kept::default();
    while let Some(line) = lines.next_line().await {
        if let Ok(mut guard) = sink.lock()
            && let Some(f) = guard.as_mut()
        {
            f(tail(line.trim_end(), LINE_BYTES));
        }
        if whole {
            if kept.text.len() + line.len() + 1 > MAX_OUTPUT_BYTES || lines.cut() {
                kept.overflowed = true;
                continue;
            }
        } else if kept.text.len() > keep_limit.saturating_mul(2) {
            // Keep a mark that something was dropped before the tail.
            kept.text = format!("…{}", tail(&kept.text, keep_limit));
        }
        kept.text.push_str(&line);
        if lines.ended_line() || lines.cut() {
            kept.text.push('\n');
        }
    }
    if !whole {
        kept.text = cut_tail(kept.text.trim(), keep_limit);
    }
    kept
}

/// Bytes of a program's stdout that are kept for parsing.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of one line passed to a line sink.
const LINE_BYTES: usize = 4096;

/// Lines of at most `max` bytes from a pipe: a longer line is handed out cut
/// at `max` as soon as it gets there, and the rest of it, up to its newline,
/// is skipped unread into any buffer. Memory stays at `max` plus the read
/// buffer, whatever the pipe sends.
pub struct BoundedLines<R> {
    reader: tokio::io::BufReader<R>,
    max: usize,
    line: Vec<u8>,
    /// The last line handed out was cut.
    cut: bool,
    /// The last line handed out ended with a newline.
    ended: bool,
    /// Skipping the rest of a cut line.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub fn new(pipe: R, max: usize) -> Self {
        BoundedLines {
            reader: tokio::io::BufReader::with_capacity(64 * 1024, pipe),
            max,
            line: Vec::new(),
            cut: false,
            ended: false,
            skipping: false,
        }
    }

    /// The next line, without its newline; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Option<String> {
        self.line.clear();
        self.cut = false;
        loop {
            let available = match self.reader.fill_buf().await {
                Ok([]) | Err(_) => {
                    self.ended = false;
                    return (!self.line.is_empty())
                        .then(|| String::from_utf8_lossy(&self.line).into_owned());
                }
                Ok(available) => available,
            };
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            let consumed = newline.map_or(available.len(), |i| i + 1);
            if self.skipping {
                self.reader.consume(consumed);
                self.skipping = newline.is_none();
                continue;
            }
            let room = self.max - self.line.len();
            if chunk.len() > room {
                self.line.extend_from_slice(&chunk[..room]);
                // Hand the cut line out now; skip the rest of it.
                let rest_ends = newline.is_some();
                self.reader.consume(consumed);
                self.skipping = !rest_ends;
                self.cut = true;
                self.ended = rest_ends;
                return Some(String::from_utf8_lossy(&self.line).into_owned());
            }
            self.line.extend_from_slice(chunk);
            self.reader.consume(consumed);
            if newline.is_some() {
                self.ended = true;
                return Some(String::from_utf8_lossy(&self.line).into_owned());
            }
        }
    }

    /// Whether the last line was cut at the bound.
    pub fn cut(&self) -> bool {
        self.cut
    }

    /// Whether the last line ended with a newline (else the stream ended).
    pub fn ended_line(&self) -> bool {
        self.ended
    }
}

/// The last `limit` bytes of `s`, cut at a character boundary.
pub fn tail(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut start = s.len() - limit;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Parse a program's stdout as JSON; what fails names the command.
pub fn parse_json<T: serde::de::DeserializeOwned>(command: &str, stdout: &str) -> Result<T> {
    serde_json::from_str(stdout).map_err(|e| Error::UnexpectedOutput {
        command: command.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn spawn_error(program: &'static str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        let package = match program {
            "npm" | "node" => "nodejs npm",
            "python3" => "python3 python3-pip",
            "ldd" => "libc-bin",
            other => other,
        };
        Error::ToolMissing {
            program: program.to_string(),
            package: package.to_string(),
        }
    } else {
        Error::io("starting", program, e)
    }
}

fn failed(display: &str, status: std::process::ExitStatus, out: &Output) -> Error {
    let status = match status.code() {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    };
    let hint = hint_for(&out.stderr_tail);
    Error::CommandFailed {
        command: display.to_string(),
        status,
        stderr_tail: tails(&out.stderr_tail, &out.stdout),
        hint,
    }
}

/// What a failed program printed, for its error: the last [`TAIL_BYTES`] of
/// its stderr and of its stdout, each labelled (some programs, such as
/// `python3 -m compileall`, report on stdout), and said to be empty when so.
pub fn tails(stderr: &str, stdout: &str) -> String {
    let one = |label: &str, text: &str| {
        let kept = cut_tail(text.trim(), TAIL_BYTES);
        if kept.is_empty() {
            format!("\n{label}: (nothing)")
        } else {
            format!("\n{label}:\n{kept}")
        }
    };
    format!("{}{}", one("stderr", stderr), one("stdout", stdout))
}

/// The last `limit` bytes of `s`, after `…` when that is not all of it.
fn cut_tail(s: &str, limit: usize) -> String {
    let kept = tail(s, limit);
    if kept.len() < s.len() && !kept.starts_with('…') {
        format!("…{kept}")
    } else {
        kept.to_string()
    }
}

/// The remedy for failures whose cause is known on this kind of machine.
fn hint_for(stderr: &str) -> String {
    let fix = if stderr.contains("error setting rlimit") {
        "podman's default ulimits exceed this host's hard limit; run scripts/setup (it writes a containers.conf override)"
    } else if stderr.contains("crun") && stderr.contains("cgroup") {
        "crun cannot run on this host's cgroups; run scripts/setup (it switches the runtime to runc)"
    } else if stderr.contains("image not known") || stderr.contains("no such image") {
        "the image is not in local storage; build it first (no registry is reachable)"
    } else if stderr.contains("HTTP response to HTTPS client") {
        "the registry speaks plain HTTP: mark it `insecure = true` in registries.conf (a file in /etc/containers/registries.conf.d/), on this host and on every engine that pulls from it, and restart those engines' podman services"
    } else if stderr.contains("pinging container registry") || stderr.contains("dial tcp") {
        "no container registry is reachable; use a base image from local storage"
    } else {
        return String::new();
    };
    format!("\nFix: {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_stdout_and_fails_with_stderr_tail() {
        let out = Invocation::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .run()
            .await
            .expect("sh runs");
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr_tail, "err");

        let err = Invocation::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .await
            .expect_err("exit 3 fails");
        let msg = err.to_string();
        assert!(msg.contains("exit code 3") && msg.contains("boom"), "{msg}");
    }

    #[tokio::test]
    async fn a_failure_quotes_both_tails_labelled_and_bounded() {
        // compileall's way: the reason on stdout, nothing on stderr.
        let err = Invocation::new("sh")
            .args(["-c", "echo '*** Error compiling x.py'; exit 1"])
            .run()
            .await
            .expect_err("exit 1 fails");
        let msg = err.to_string();
        assert!(
            msg.contains("stderr: (nothing)") && msg.contains("stdout:\n*** Error compiling x.py"),
            "{msg}"
        );
        // Both, with a line sink (stdout then streams, and its tail is kept),
        // each cut to its last TAIL_BYTES.
        let err = Invocation::new("sh")
            .args([
                "-c",
                "head -c 100000 /dev/zero | tr '\\0' o; echo; echo OUT-END; \
                 head -c 100000 /dev/zero | tr '\\0' e >&2; echo >&2; echo ERR-END >&2; exit 2",
            ])
            .on_line(Box::new(|_| {}))
            .run()
            .await
            .expect_err("exit 2 fails");
        let msg = err.to_string();
        assert!(msg.contains("exit code 2"), "{msg}");
        assert!(msg.contains("stderr:\n…eee"), "{msg}");
        assert!(msg.contains("stdout:\n…ooo"), "{msg}");
        assert!(
            msg.contains("o\nOUT-END") && msg.contains("e\nERR-END"),
            "{msg}"
        );
        assert!(msg.len() < 3 * TAIL_BYTES, "{}", msg.len());
    }

    #[tokio::test]
    async fn missing_program_names_the_fix() {
        let err = Invocation::new("mcpod-no-such-program")
            .run()
            .await
            .expect_err("missing");
        assert!(matches!(err, Error::ToolMissing { .. }), "{err}");
        assert!(err.to_string().contains("scripts/setup"));
    }

    #[tokio::test]
    async fn cancellation_and_timeout_stop_the_program() {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            t.cancel();
        });
        let started = std::time::Instant::now();
        let err = Invocation::new("sleep")
            .arg("30")
            .cancel_on(token)
            .run()
            .await
            .expect_err("cancelled");
        assert!(err.is_cancelled(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let err = Invocation::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(100))
            .run()
            .await
            .expect_err("timed out");
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn lines_stream_to_the_sink() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let s = seen.clone();
        Invocation::new("sh")
            .args(["-c", "echo one; echo two >&2; echo three"])
            .on_line(Box::new(move |l| {
                if let Ok(mut v) = s.lock() {
                    v.push(l.to_string())
                }
            }))
            .run()
            .await
            .expect("runs");
        let mut got = seen.lock().map(|v| v.clone()).unwrap_or_default();
        got.sort();
        assert_eq!(got, ["one", "three", "two"]);
    }

    #[tokio::test]
    async fn a_line_is_cut_at_the_bound_and_never_buffered_whole() {
        let mut input = vec![b'x'; 10 * 1024 * 1024];
        input.extend_from_slice(b"\nshort\nlast");
        let mut lines = BoundedLines::new(&input[..], 100);
        let first = lines.next_line().await.expect("the cut line");
        assert_eq!((first.len(), lines.cut()), (100, true));
        assert!(
            lines.line.capacity() < 64 * 1024,
            "{}",
            lines.line.capacity()
        );
        assert_eq!(lines.next_line().await.as_deref(), Some("short"));
        assert!(!lines.cut() && lines.ended_line());
        assert_eq!(lines.next_line().await.as_deref(), Some("last"));
        assert!(!lines.ended_line());
        assert_eq!(lines.next_line().await, None);
    }

    /// A line that never ends reaches the sink once, cut; the bytes past the
    /// cut count against `stop_past` all the same, so the program is stopped
    /// there and not at its deadline.
    #[tokio::test]
    async fn every_byte_counts_against_the_printed_bound_even_in_a_line_that_never_ends() {
        let lines = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = lines.clone();
        let stop = CancellationToken::new();
        let err = Invocation::new("cat")
            .arg("/dev/zero")
            .on_line(Box::new(move |_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }))
            .stop_past(1 << 20, stop.clone())
            .cancel_on(stop.clone())
            .timeout(Duration::from_secs(20))
            .run()
            .await
            .expect_err("stopped");
        assert!(
            err.is_cancelled(),
            "stopped by the bound, not the deadline: {err}"
        );
        assert!(stop.is_cancelled());
        assert!(lines.load(std::sync::atomic::Ordering::Relaxed) <= 1);
        // Both pipes count together.
        let stop = CancellationToken::new();
        let err = Invocation::new("sh")
            .args([
                "-c",
                "head -c 700000 /dev/zero; head -c 700000 /dev/zero >&2; sleep 60",
            ])
            .on_line(Box::new(|_| {}))
            .stop_past(1 << 20, stop.clone())
            .cancel_on(stop)
            .run()
            .await
            .expect_err("stopped");
        assert!(err.is_cancelled(), "{err}");
    }

    #[tokio::test]
    async fn output_past_the_bound_is_an_error() {
        let err = Invocation::new("head")
            .args(["-c", &(MAX_OUTPUT_BYTES + 10).to_string(), "/dev/zero"])
            .run()
            .await
            .expect_err("too much output");
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn tail_cuts_at_char_boundary() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
