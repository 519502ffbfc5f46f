//! Writable image paths: directories of the image a session's servers may
//! write to (a server that chmods or unpacks beside its own code at start).
//! Each is a tmpfs over the path that podman fills with the image's files
//! there (its `--tmpfs` copies them up), so the root stays read-only, nothing
//! reaches the host's disk, and a write past the size fails in the container
//! with "No space left on device".
//!
//! Asked by the image's `io.mcpod.requests` label (`writable_paths`) or by a
//! launch's `overrides.SERVER.writable_paths`; granted like mounts: an
//! override beyond the policy is an error, a label's is left out with a
//! warning. Bounds: each path gets the operator's `--writable-path-mb`
//! (default 64 MiB; 0 grants none), at most [`MAX_PATHS`] a session, and
//! every tmpfs of the session together (`/tmp` and `/run` included) within
//! its `memory_mb`: tmpfs pages are charged to the container's memory cgroup.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::Policy;
use crate::labels::Requests;
use crate::{Error, Result};

/// Writable image paths one session may have.
pub const MAX_PATHS: usize = 16;
/// The size of each, MiB, when the operator sets none.
pub const DEFAULT_PATH_MB: u32 = 64;

/// What show_policy says of writable image paths.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WritableReport {
    /// The size of each writable path's tmpfs, MiB (`--writable-path-mb`; 0: none are granted).
    pub path_mb: u32,
    /// Writable paths a session may have.
    pub max_paths: usize,
    /// Paths never granted: these and anything under them, besides `/`, relative
    /// paths and any with a `.` or `..` component.
    pub refused: Vec<String>,
    /// How they are asked for and bounded.
    pub how: String,
}

impl Policy {
    pub fn writable_report(&self) -> WritableReport {
        WritableReport {
            path_mb: self.writable_path_mb,
            max_paths: MAX_PATHS,
            refused: crate::labels::RESERVED_TOPS
                .iter()
                .map(|t| t.to_string())
                .collect(),
            how: "a launch's overrides.SERVER.writable_paths or the image's io.mcpod.requests writable_paths: a tmpfs copy of the image's files at each path, path_mb each, all of a session's tmpfs (with /tmp 64 MiB and /run 16 MiB) within its memory_mb".into(),
        }
    }

    /// Add the writable image paths asked for to `tmpfs` (which holds `/tmp`
    /// and `/run`): the launch's (`asked`: where each was asked, the path),
    /// else none, and the label's. An asked path the policy does not grant is
    /// an error; a label's is left out with a warning.
    pub(super) fn grant_writable(
        &self,
        asked: &[(String, String)],
        label: &Requests,
        memory_mb: u32,
        tmpfs: &mut BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let from_label = label
            .writable_paths
            .iter()
            .map(|p| ("io.mcpod.requests writable_paths".to_string(), p.clone()));
        let wanted = asked
            .iter()
            .map(|(field, p)| (field.clone(), p.clone()))
            .chain(from_label);
        let mut used: u64 = tmpfs.values().map(|s| mib(s)).sum();
        let mut granted = 0;
        for (explicit, (field, raw)) in wanted.enumerate().map(|(i, w)| (i < asked.len(), w)) {
            if explicit {
                crate::labels::check_writable_input(&field, &raw)?;
            }
            let path = normal(&raw);
            if tmpfs.contains_key(&path) {
                continue;
            }
            let mut refuse = |reason: String, fix: String| -> Result<()> {
                if explicit {
                    return Err(Error::invalid(&field, &raw, reason, fix));
                }
                warnings.push(format!(
                    "the image requests `{raw}` writable; not granted: {reason}"
                ));
                Ok(())
            };
            if self.writable_path_mb == 0 {
                refuse(
                    "the operator grants no writable image paths (--writable-path-mb 0)".into(),
                    "ask the operator to start mcpod with --writable-path-mb N".into(),
                )?;
                continue;
            }
            if granted >= MAX_PATHS {
                refuse(
                    format!("a session may have at most {MAX_PATHS} writable paths"),
                    "name fewer, or a directory above several of them".into(),
                )?;
                continue;
            }
            let size = u64::from(self.writable_path_mb);
            if used + size > u64::from(memory_mb) {
                refuse(
                    format!(
                        "its {size} MiB tmpfs would take the session's tmpfs to {} MiB, more than its memory_mb {memory_mb} (tmpfs is memory)",
                        used + size
                    ),
                    format!(
                        "launch with a larger memory_mb (up to the operator's {}), or name fewer paths",
                        self.max_memory_mb
                    ),
                )?;
                continue;
            }
            used += size;
            granted += 1;
            tmpfs.insert(path, format!("{size}m"));
        }
        Ok(())
    }
}

/// `p` without repeated or trailing slashes.
fn normal(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// A tmpfs size as mcpod writes it (`64m`), in MiB.
fn mib(size: &str) -> u64 {
    size.trim_end_matches('m').parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::Ask;
    use super::*;

    fn ask(paths: &[&str]) -> Ask {
        Ask {
            writable_paths: paths
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("overrides.s.writable_paths[{i}]"), p.to_string()))
                .collect(),
            ..Ask::default()
        }
    }

    #[test]
    fn an_asked_path_becomes_a_bounded_tmpfs() {
        let iso = Policy::default()
            .grant(
                &ask(&["/opt/app/bin/", "/opt//data", "/tmp"]),
                None,
                "u".into(),
            )
            .expect("granted");
        assert_eq!(iso.tmpfs["/opt/app/bin"], "64m");
        assert_eq!(iso.tmpfs["/opt/data"], "64m");
        assert_eq!(iso.tmpfs["/tmp"], "64m", "already writable: unchanged");
        assert_eq!(iso.tmpfs.len(), 4);
    }

    #[test]
    fn every_refused_path_form_is_an_error_naming_it_and_the_fix() {
        for (bad, says) in [
            ("opt/app", "not absolute"),
            ("/", "root `/`"),
            ("/opt/../etc", "`..`"),
            ("/proc", "under `/proc`"),
            ("/proc/1/root", "under `/proc`"),
            ("/sys/fs/cgroup", "under `/sys`"),
            ("/dev/shm", "under `/dev`"),
            ("/run", "under `/run`"),
            ("//run/user", "under `/run`"),
            ("/.mcpod", "supervisor"),
            ("/.mcpod/supervisor", "supervisor"),
            ("/opt/a,size=9g", "contains `,`"),
        ] {
            let e = Policy::default()
                .grant(&ask(&[bad]), None, "u".into())
                .expect_err(bad)
                .to_string();
            assert!(
                e.contains("overrides.s.writable_paths[0]") && e.contains(says),
                "{bad}: {e}"
            );
            assert!(e.contains("Fix: "), "{e}");
        }
    }

    #[test]
    fn size_and_count_are_bounded_by_memory_and_policy() {
        // 512 MiB: /tmp 64 + /run 16 + six paths of 64 = 464; a seventh is 528.
        let seven: Vec<String> = (0..7).map(|i| format!("/opt/p{i}")).collect();
        let seven: Vec<&str> = seven.iter().map(String::as_str).collect();
        let e = Policy::default()
            .grant(&ask(&seven), None, "u".into())
            .expect_err("over memory")
            .to_string();
        assert!(
            e.contains("/opt/p6") && e.contains("more than its memory_mb 512"),
            "{e}"
        );
        let big = Ask {
            memory_mb: Some(2048),
            ..ask(&seven)
        };
        assert!(Policy::default().grant(&big, None, "u".into()).is_ok());
        let seventeen: Vec<String> = (0..17).map(|i| format!("/opt/p{i}")).collect();
        let seventeen: Vec<&str> = seventeen.iter().map(String::as_str).collect();
        let many = Ask {
            memory_mb: Some(2048),
            ..ask(&seventeen)
        };
        let policy = Policy {
            writable_path_mb: 8,
            ..Policy::default()
        };
        let e = policy
            .grant(&many, None, "u".into())
            .expect_err("too many")
            .to_string();
        assert!(e.contains("at most 16 writable paths"), "{e}");
        let none = Policy {
            writable_path_mb: 0,
            ..Policy::default()
        };
        let e = none
            .grant(&ask(&["/opt/a"]), None, "u".into())
            .expect_err("none granted")
            .to_string();
        assert!(e.contains("--writable-path-mb"), "{e}");
    }

    #[test]
    fn a_labels_path_beyond_the_policy_is_left_out_with_a_warning() {
        let label = Requests {
            writable_paths: vec!["/var/cache/app".into()],
            ..Requests::default()
        };
        let none = Policy {
            writable_path_mb: 0,
            ..Policy::default()
        };
        let iso = none
            .grant(&Ask::default(), Some(&label), "u".into())
            .expect("a label's request is not an error");
        assert!(!iso.tmpfs.contains_key("/var/cache/app"));
        assert!(
            iso.warnings.iter().any(|w| w.contains("/var/cache/app")),
            "{:?}",
            iso.warnings
        );
        let iso = Policy::default()
            .grant(&Ask::default(), Some(&label), "u".into())
            .expect("granted");
        assert_eq!(iso.tmpfs["/var/cache/app"], "64m");
    }
}
