//! Which user a session's processes run as on the host: never root, and
//! never the invoking user's own uid. Chosen once per process from podman's
//! version, whether it runs rootless, and the subordinate IDs in
//! `/etc/subuid` and `/etc/subgid`.
//!
//! | podman | as root | rootless |
//! |---|---|---|
//! | ≥ 4.4 | `--userns=auto`: a range of `containers`' IDs per container | `--userns=auto`: a range of the user's subordinate IDs per container |
//! | < 4.4 | `--uidmap 0:BASE:65536`: `containers`' range, shared | `--uidmap 0:1:65536`: the user's subordinate range, shared (IDs count inside the user's namespace, where 0 is the user and 1.. the range) |
//! | no subordinate IDs | `--user 65534:65534` | refused: the only ID podman could give is the user's own |

use super::podman;
use crate::{Error, Result};

/// What the local podman gives sessions, asked once per process.
#[derive(Clone, Debug)]
pub struct Local {
    pub user: UserMode,
    /// Whether podman applies memory, pids and cpu limits.
    pub limits_enforced: bool,
    /// Whether a writable mount can be id-mapped to its directory's owner
    /// (see [`Local::writable_mount`]).
    pub idmap: bool,
}

impl Local {
    pub async fn detect() -> Local {
        // Two processes at once: `podman info` alone takes 0.2-0.4 s here (it
        // asks dpkg which package each of its helpers came from).
        let (info, version) = tokio::join!(podman::host_info(), podman::client_version());
        let version = version.unwrap_or((0, 0));
        let user = UserMode::for_version(version);
        Local {
            idmap: info
                .as_ref()
                .is_ok_and(|i| idmaps(&user, version, &i.runtime, i.rootless)),
            limits_enforced: info.map(|i| i.enforces_limits()).unwrap_or(true),
            user,
        }
    }

    /// An engine other than the local one: its podman's version decides the
    /// user; mounts are local only, so nothing is id-mapped.
    pub fn remote(version: (u32, u32)) -> Local {
        Local {
            user: UserMode::remote(version),
            limits_enforced: true,
            idmap: false,
        }
    }

    /// How a writable mount of `source` is written: `Some(owner)` when it is
    /// id-mapped (the session's root writes there as the directory's owner,
    /// on that mount only), `None` when the session's own uid may write it;
    /// an error naming the fix when neither holds. The owner is never root:
    /// a session writing as host root could leave a setuid-root file.
    pub fn writable_mount(&self, source: &str) -> Result<Option<Owner>> {
        use std::os::unix::fs::MetadataExt;
        if self.idmap {
            let meta = std::fs::metadata(source)
                .map_err(|e| Error::io("reading", std::path::Path::new(source), e))?;
            if meta.uid() != 0 && meta.gid() != 0 {
                return Ok(Some(Owner {
                    uid: meta.uid(),
                    gid: meta.gid(),
                }));
            }
        }
        self.user.check_writable(source, self.idmap).map(|()| None)
    }

    /// What a writable mount needs on this host, for show_policy.
    pub fn writable_mounts(&self) -> String {
        if self.idmap {
            return "id-mapped: the session writes as the directory's owner, on that mount only (podman 5 with crun, as root); a directory root owns is id-mapped never, and needs o+w".into();
        }
        match self.user.host_ids() {
            Some((uid, gid)) => format!(
                "the directory must let host uid {uid} (gid {gid}) write: the session's root runs as it ({}); mcpod does not chown it",
                self.user.describe()
            ),
            None => format!(
                "the directory must let others write (o+w): the session's root runs as a uid podman picks per container ({}), and this podman (rootless, older than 5, or not crun) has no id-mapped mounts",
                self.user.describe()
            ),
        }
    }
}

/// The host owner a writable mount is id-mapped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// podman's volume option mapping this owner, and only this owner, to
    /// the session's root (`@` marks a host ID).
    pub fn volume_option(&self) -> String {
        format!("idmap=uids=@{}-0-1;gids=@{}-0-1", self.uid, self.gid)
    }
}

/// Whether writable mounts are id-mapped: podman 5 (whose `idmap=uids=@…`
/// names host IDs) with crun, as root (a rootless user may not id-map a
/// host directory: the kernel asks for CAP_SYS_ADMIN over its file system)
/// and `--userns=auto`. podman 4.3 on Debian 12 runs runc 1.1, which has no
/// id-mapped mounts, and Debian 12's crun 1.8 refuses cgroups v1 hybrid.
fn idmaps(user: &UserMode, version: (u32, u32), runtime: &str, rootless: bool) -> bool {
    *user == UserMode::Auto && version >= (5, 0) && runtime == "crun" && !rootless
}

/// Container uids 0..MAPPED map onto a host range (with subordinate IDs).
const MAPPED: u64 = 65536;

/// How server processes avoid running as host root or as the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserMode {
    /// `--userns=auto`: podman gives each container its own range.
    Auto,
    /// `--uidmap/--gidmap 0:FROM:65536`: one fixed unprivileged range, whose
    /// host IDs start at `uid_base`/`gid_base`. Used on podman older than
    /// 4.4, whose `--userns=auto` can deadlock against a concurrent
    /// `container cleanup` (podman#16062: userns.lock, layers.lock and
    /// storage.lock taken in opposite orders; seen here with 4.3.1). As root
    /// the map counts host IDs (FROM is the base); rootless it counts inside
    /// the user's namespace (FROM is 1, the first subordinate ID).
    Map {
        uid_base: u64,
        gid_base: u64,
        rootless: bool,
    },
    /// As root with no subordinate IDs: run as nobody.
    Nobody,
    /// Rootless with no subordinate IDs for `user` (uid `uid`): podman could
    /// only run the servers as the user's own uid, so sessions are refused.
    Unavailable { user: String, uid: u32 },
}

impl UserMode {
    /// Decide from the local podman (its version, rootless or not) and the
    /// subordinate IDs of the user it runs as.
    pub async fn detect() -> UserMode {
        UserMode::for_version(podman::client_version().await.unwrap_or((0, 0)))
    }

    fn for_version(version: (u32, u32)) -> UserMode {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        choose(uid, &user_name(uid), version, "/etc/subuid", "/etc/subgid")
    }

    /// For an engine other than the local one, whose subordinate IDs mcpod
    /// cannot read: `--userns=auto` from podman 4.4 on (podman then picks a
    /// range per container), else the container's processes run as nobody.
    pub fn remote(version: (u32, u32)) -> UserMode {
        if version >= (4, 4) {
            UserMode::Auto
        } else {
            UserMode::Nobody
        }
    }

    /// As reported in a session's isolation.
    pub fn describe(&self) -> String {
        match self {
            UserMode::Auto => "userns=auto".into(),
            UserMode::Map {
                uid_base,
                rootless: false,
                ..
            } => format!("uidmap=0:{uid_base}:{MAPPED}"),
            UserMode::Map {
                uid_base,
                rootless: true,
                ..
            } => format!("uidmap=0:1:{MAPPED} (rootless: host uids {uid_base}..)"),
            UserMode::Nobody => "user=65534:65534".into(),
            UserMode::Unavailable { user, .. } => {
                format!("none (rootless, no subordinate IDs for {user})")
            }
        }
    }

    /// Err when no session may start in this mode, naming the fix.
    pub fn usable(&self) -> Result<()> {
        match self {
            UserMode::Unavailable { user, uid } => Err(Error::invalid(
                "user namespace",
                user,
                format!(
                    "rootless podman has no subordinate IDs for `{user}` in /etc/subuid and /etc/subgid, so a session's servers would run as your own uid {uid}, with your files and keys"
                ),
                format!(
                    "add a range: `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (scripts/setup does), then `podman system migrate`"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The host uid and gid a session's root runs as, where it is known
    /// before the container starts (`userns=auto` picks a range per container).
    fn host_ids(&self) -> Option<(u64, u64)> {
        match self {
            UserMode::Auto | UserMode::Unavailable { .. } => None,
            UserMode::Map {
                uid_base, gid_base, ..
            } => Some((*uid_base, *gid_base)),
            UserMode::Nobody => Some((65534, 65534)),
        }
    }

    /// A writable mount the session's root cannot write would fail inside
    /// the server ("unable to open database file"): refuse it now, naming
    /// the uid and a fix the user can run. mcpod does not chown the
    /// operator's directory for it (podman's `:U`). With `--userns=auto` the
    /// uid is one podman picks when the container starts, so only a
    /// directory others may write is writable. `idmap`: this host id-maps
    /// writable mounts, and `source` was left to this check because root owns it.
    pub fn check_writable(&self, source: &str, idmap: bool) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(source)
            .map_err(|e| Error::io("reading", std::path::Path::new(source), e))?;
        let mode = meta.mode();
        let ids = self.host_ids();
        let writable = mode & 0o002 != 0
            || ids.is_some_and(|(uid, gid)| {
                (u64::from(meta.uid()) == uid && mode & 0o200 != 0)
                    || (u64::from(meta.gid()) == gid && mode & 0o020 != 0)
            });
        if writable {
            return Ok(());
        }
        let what = format!(
            "owner {}:{}, mode {:o}",
            meta.uid(),
            meta.gid(),
            mode & 0o7777
        );
        let (reason, fix) = match (ids, self) {
            (_, UserMode::Auto) if idmap => (
                format!(
                    "root owns this directory ({what}), and mcpod id-maps a writable mount to its owner only when that owner is not root (a session writing as host root could leave a setuid-root file)"
                ),
                format!(
                    "`chown USER:GROUP {source}` to the user whose files the session should write, or `chmod o+w {source}`, or mount it read-only"
                ),
            ),
            (None, _) => (
                format!(
                    "a session's root runs as a uid podman picks when the container starts ({}), and this directory ({what}) does not let others write; this podman has no id-mapped mounts (they need podman 5 with crun, as root)",
                    self.describe()
                ),
                format!(
                    "`chmod o+w {source}` (or mount a directory made for the session), or mount it read-only"
                ),
            ),
            (Some((uid, gid)), _) => {
                let chown = match self {
                    // Inside `podman unshare`, 1 is the first subordinate ID: the
                    // session's root.
                    UserMode::Map { rootless: true, .. } => {
                        format!("`podman unshare chown 1:1 {source}`")
                    }
                    _ => format!("`chown {uid}:{gid} {source}`"),
                };
                (
                    format!(
                        "a session's root runs as host uid {uid} ({}), and this directory ({what}) does not let it write",
                        self.describe()
                    ),
                    format!(
                        "let uid {uid} write it ({chown}, or `chmod o+w {source}`), or mount it read-only"
                    ),
                )
            }
        };
        Err(Error::invalid("mount", source, reason, fix))
    }

    /// podman's flags for this mode.
    pub fn flags(&self) -> Vec<String> {
        match self {
            UserMode::Auto => vec!["--userns=auto".into()],
            UserMode::Map {
                uid_base,
                gid_base,
                rootless,
            } => {
                let (uid_from, gid_from) = if *rootless {
                    (1, 1)
                } else {
                    (*uid_base, *gid_base)
                };
                vec![
                    format!("--uidmap=0:{uid_from}:{MAPPED}"),
                    format!("--gidmap=0:{gid_from}:{MAPPED}"),
                ]
            }
            UserMode::Nobody => vec!["--user=65534:65534".into()],
            // Never launched (see `usable`).
            UserMode::Unavailable { .. } => Vec::new(),
        }
    }
}

/// The mode for a process of `uid` (named `user`) with podman `version` and
/// these subordinate ID files.
fn choose(uid: u32, user: &str, version: (u32, u32), subuid: &str, subgid: &str) -> UserMode {
    let rootless = uid != 0;
    // As root, podman takes --userns=auto's ranges from `containers`.
    let owner = if rootless { user } else { "containers" };
    let ids = (
        subordinate_base(subuid, owner, uid),
        subordinate_base(subgid, owner, uid),
    );
    let (Some(uid_base), Some(gid_base)) = ids else {
        return if rootless {
            UserMode::Unavailable {
                user: user.to_string(),
                uid,
            }
        } else {
            UserMode::Nobody
        };
    };
    if version >= (4, 4) {
        UserMode::Auto
    } else {
        UserMode::Map {
            uid_base,
            gid_base,
            rootless,
        }
    }
}

/// The name of user `uid` (else its number, as /etc/subuid may name it).
fn user_name(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, buf for its length; the
    // name is read only when the call found an entry.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name.to_string_lossy().into_owned();
    }
    uid.to_string()
}

/// The first ID of the range `user` (by name, or by `uid`) has in `file`,
/// if it has room for the map.
fn subordinate_base(file: &str, user: &str, uid: u32) -> Option<u64> {
    let uid = uid.to_string();
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        let owner = f.next()?;
        (owner == user || owner == uid).then_some(())?;
        let start: u64 = f.next()?.trim().parse().ok()?;
        let count: u64 = f.next()?.trim().parse().ok()?;
        (count >= MAPPED).then_some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> (tempfile::NamedTempFile, String) {
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), text).expect("write");
        let path = file.path().display().to_string();
        (file, path)
    }

    #[test]
    fn every_mode_keeps_servers_off_root_and_off_the_user() {
        let (_a, sub) = ids(
            "containers:2147483647:2147483648\ndev:100000:65536\n1001:200000:65536\nsmall:300000:1000\n",
        );
        let map = |uid, user, version| choose(uid, user, version, &sub, &sub);
        assert_eq!(
            map(0, "root", (4, 3)).flags()[0],
            "--uidmap=0:2147483647:65536"
        );
        assert_eq!(map(0, "root", (5, 4)), UserMode::Auto);
        let rootless = map(1000, "dev", (4, 3));
        assert_eq!(
            rootless.flags(),
            ["--uidmap=0:1:65536", "--gidmap=0:1:65536"],
            "rootless maps count inside the user's namespace"
        );
        assert_eq!(rootless.host_ids(), Some((100000, 100000)));
        assert_eq!(map(1000, "dev", (5, 0)), UserMode::Auto);
        // By uid number, as useradd may write it.
        assert_eq!(map(1001, "who", (4, 3)).host_ids(), Some((200000, 200000)));
        // Too few IDs, or none: refused rootless, nobody as root.
        let none = map(1002, "small", (5, 4));
        assert!(matches!(none, UserMode::Unavailable { .. }), "{none:?}");
        let err = none.usable().expect_err("refused").to_string();
        assert!(err.contains("usermod --add-subuids"), "{err}");
        let (_b, empty) = ids("");
        assert_eq!(choose(0, "root", (4, 3), &empty, &empty), UserMode::Nobody);
    }

    #[test]
    fn a_rootless_mount_fix_is_one_the_user_can_run() {
        let dir = tempfile::tempdir().expect("dir");
        let source = dir.path().display().to_string();
        let mode = UserMode::Map {
            uid_base: 100000,
            gid_base: 100000,
            rootless: true,
        };
        let err = mode
            .check_writable(&source, false)
            .expect_err("not writable")
            .to_string();
        assert!(
            err.contains(&format!("podman unshare chown 1:1 {source}")),
            "{err}"
        );
    }

    #[test]
    fn a_writable_mount_is_id_mapped_to_its_owner_never_to_root() {
        use std::os::unix::fs::PermissionsExt;
        assert!(idmaps(&UserMode::Auto, (5, 4), "crun", false));
        assert!(!idmaps(&UserMode::Auto, (5, 4), "runc", false));
        assert!(!idmaps(&UserMode::Auto, (5, 4), "crun", true), "rootless");
        assert!(!idmaps(&UserMode::Auto, (4, 9), "crun", false));
        assert!(!idmaps(&UserMode::Nobody, (5, 4), "crun", false));
        let owner = Owner {
            uid: 4242,
            gid: 4343,
        };
        assert_eq!(owner.volume_option(), "idmap=uids=@4242-0-1;gids=@4343-0-1");

        let dir = tempfile::tempdir().expect("dir");
        let source = dir.path().display().to_string();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let local = |idmap| Local {
            user: UserMode::Auto,
            limits_enforced: true,
            idmap,
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Root's directory: never id-mapped, and not writable by others.
            let err = local(true)
                .writable_mount(&source)
                .expect_err("root's")
                .to_string();
            assert!(
                err.contains("root owns this directory") && err.contains("chown USER:GROUP"),
                "{err}"
            );
            std::os::unix::fs::chown(dir.path(), Some(4242), Some(4343)).expect("chown");
            assert_eq!(
                local(true).writable_mount(&source).expect("mapped"),
                Some(owner)
            );
        }
        // Without id-mapped mounts, userns=auto writes only where others may.
        let err = local(false)
            .writable_mount(&source)
            .expect_err("not o+w")
            .to_string();
        assert!(
            err.contains("does not let others write")
                && err.contains(&format!("chmod o+w {source}")),
            "{err}"
        );
        assert!(local(false).writable_mounts().contains("o+w"));
        assert!(local(true).writable_mounts().starts_with("id-mapped"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        assert_eq!(local(false).writable_mount(&source).expect("o+w"), None);
    }
}
