//! The one error type of mcpod. Every message names what failed, the input that
//! made it fail, and what to do about it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An external program (podman, buildah, skopeo) is not installed.
    #[error(
        "`{program}` was not found on PATH. Fix: run scripts/setup, or `apt-get install {package}`"
    )]
    ToolMissing { program: String, package: String },

    /// An external program ran and failed.
    #[error("`{command}` failed ({status}): {stderr_tail}{hint}")]
    CommandFailed {
        command: String,
        status: String,
        stderr_tail: String,
        /// Empty, or "\nFix: ..." with the likely remedy.
        hint: String,
    },

    /// An external program ran past its deadline and was stopped.
    #[error(
        "`{command}` did not finish within {secs} s and was stopped. Fix: retry, or raise the timeout"
    )]
    Timeout { command: String, secs: u64 },

    /// The caller cancelled the operation; everything it started was cleaned up.
    #[error("{what} was cancelled; everything it had started was cleaned up")]
    Cancelled { what: String },

    /// A file system operation failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A path the caller gave resolves outside the workspace root.
    #[error(
        "path `{input}` resolves outside the workspace root `{root}`. Fix: pass a path inside the root; to serve another directory, register mcpod with a root covering it (`mcpod config --client CLIENT --root DIR --write`, then restart the client)"
    )]
    PathOutsideRoot { input: String, root: PathBuf },

    /// Invalid input from the caller (a tool argument or a CLI flag).
    #[error("invalid {field} `{value}`: {reason}. Fix: {fix}")]
    InvalidInput {
        field: String,
        value: String,
        reason: String,
        fix: String,
    },

    /// A `${VAR}` build-arg value names a host variable that is not set.
    #[error(
        "build arg `{arg}` of image `{image}` refers to host variable `{var}`, which is not set. Fix: export {var}, or pass the value literally"
    )]
    MissingBuildArgVar {
        image: String,
        arg: String,
        var: String,
    },

    /// A label on an image is malformed or invalid.
    #[error("label `{key}` at `{path}`: {reason}. Fix: {fix}")]
    Label {
        key: String,
        /// A JSON path into the label value, such as `$.fs.command[0]`.
        path: String,
        reason: String,
        fix: String,
    },

    /// An image reference that is not there.
    #[error("image `{reference}` was not found {place}. Fix: {fix}")]
    ImageNotFound {
        reference: String,
        place: &'static str,
        fix: String,
    },

    /// A launch in which no server came up; the session is gone again.
    #[error(
        "no server of image `{image}` came up, so session `{session}` was removed with its container. {reasons}. Fix: {fix}"
    )]
    NoServerReady {
        image: String,
        session: String,
        reasons: String,
        /// What to do: [`Error::NO_SERVER_READY_FIX`], or what the servers' failure calls for.
        fix: String,
    },

    /// Output of an external program that mcpod could not understand.
    #[error("could not parse the output of `{command}`: {reason}")]
    UnexpectedOutput { command: String, reason: String },
}

impl Error {
    /// The fix for [`Error::NoServerReady`] when nothing more is known.
    pub const NO_SERVER_READY_FIX: &str = "correct the server's command or its requests in the image's labels (see them with inspect_labels), or launch with `servers` naming the ones that work";

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    pub fn label(
        key: impl Into<String>,
        path: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::Label {
            key: key.into(),
            path: path.into(),
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// True when the error is the caller's cancellation, not a failure.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }
}
