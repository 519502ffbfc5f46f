//! Debian's packages, fetched and unpacked without running any of their code.
//!
//! The host's `apt-get` resolves a set of packages and their dependency
//! closure for one Debian release and downloads them into a private root
//! under the state dir (`debian/<suite>/`: its own sources list, package
//! lists, dpkg status and download cache; the host's package database is
//! neither read nor changed). apt checks the release's signature against the
//! host's Debian archive keyring and each file against the signed index.
//! `dpkg-deb -x` then unpacks each package into a tree: maintainer scripts
//! never run, so what needs one (the `cc` alternative, the CA bundle) is the
//! caller's to add. Packages already in a tree are named as installed, so a
//! second fetch on top of a base brings only what is new.
//!
//! Package names come from mcpod or from an operator's allow-list, checked
//! against Debian's name syntax; they reach apt as argv, never as a shell
//! string or a file apt reads as configuration.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::process::Invocation;
use crate::image::{Progress, store};
use crate::{Error, Result};

/// How long apt gets to refresh its lists or download a set of packages.
const APT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long unpacking one package may take.
const UNPACK_TIMEOUT: Duration = Duration::from_secs(300);
/// How old the package lists may be before a fetch refreshes them.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The most packages one fetch may bring (a closure past this is refused).
const MAX_PACKAGES: usize = 400;
/// The host's keyring for Debian's archive (package `debian-archive-keyring`).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Where packages come from unless the operator names a mirror
/// (`MCPOD_DEBIAN_MIRROR`, e.g. a local mirror or an apt cache's address).
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// A Debian release mcpod can make trees from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// Debian 12: glibc 2.36, Python 3.11, gcc 12.
    Bookworm,
    /// Debian 13: glibc 2.41, Python 3.13, gcc 14.
    Trixie,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::Bookworm, Suite::Trixie];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }

    /// `bookworm`, `trixie`, `debian-12`, `debian-13`, `12`, `13`.
    pub fn parse(s: &str) -> Option<Suite> {
        match s.strip_prefix("debian-").unwrap_or(s) {
            "bookworm" | "12" => Some(Suite::Bookworm),
            "trixie" | "13" => Some(Suite::Trixie),
            _ => None,
        }
    }

    /// The Python minor version the release's `python3` is.
    pub fn python_minor(self) -> &'static str {
        match self {
            Suite::Bookworm => "3.11",
            Suite::Trixie => "3.13",
        }
    }

    /// The release's C library version.
    pub fn glibc(self) -> &'static str {
        match self {
            Suite::Bookworm => "2.36",
            Suite::Trixie => "2.41",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One package as fetched: its exact version and the file apt checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deb {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The download's SHA-256, from the signed index.
    pub sha256: String,
    /// What it provides (`Provides:`), for a status naming it installed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provides: String,
    /// `same`, `foreign`, `allowed` or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub multi_arch: String,
    /// The `.deb` in the suite's download cache.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Deb {
    /// `name=version`, as a lock records it and apt takes it.
    pub fn pinned(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

/// Why the host cannot fetch Debian packages, if it cannot.
pub async fn unavailable() -> Option<String> {
    for program in ["apt-get", "dpkg-deb"] {
        if Invocation::new(program)
            .arg("--version")
            .timeout(Duration::from_secs(30))
            .run()
            .await
            .is_err()
        {
            return Some(format!(
                "`{program}` is not on mcpod's PATH (a Debian or Ubuntu host has it)"
            ));
        }
    }
    if !Path::new(KEYRING).is_file() {
        return Some(format!(
            "{KEYRING} is missing (install the package debian-archive-keyring)"
        ));
    }
    None
}

/// Whether `name` is a Debian package name (policy 5.6.1: lowercase letters,
/// digits, `+ - .`, starting with a letter or digit, at least two long), or
/// `name=version` with a Debian version.
pub fn is_package(spec: &str) -> bool {
    let (name, version) = match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let name_ok = (2..=100).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let version_ok = version.is_none_or(|v| {
        (1..=100).contains(&v.len())
            && v.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.~:".contains(&b))
    });
    name_ok && version_ok
}

/// Fetch `want` (names, or `name=version`) and everything they depend on
/// (Depends and Pre-Depends, not Recommends) from `suite`, less what
/// `installed` already holds. The lists are refreshed when older than a day,
/// or once more when a package is not found in them.
pub async fn fetch(
    suite: Suite,
    want: &[String],
    installed: &[Deb],
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Vec<Deb>> {
    if let Some(spec) = want.iter().find(|w| !is_package(w)) {
        return Err(Error::invalid(
            "system_packages",
            spec.as_str(),
            "it is not a Debian package name",
            "name packages as Debian does (`git`, `libsqlite3-0`), optionally `NAME=VERSION`",
        ));
    }
    if let Some(why) = unavailable().await {
        return Err(Error::invalid(
            "system_packages",
            want.join(" "),
            format!("this host cannot fetch Debian packages: {why}"),
            "run mcpod on a Debian or Ubuntu host, or name a base that carries them (--base)",
        ));
    }
    // One apt at a time per release (its lists and download cache are
    // shared), across mcpod processes too.
    let _lock = store::lock_key(&format!("debian-{suite}")).await?;
    let root = Root::prepare(suite, installed)?;
    // apt runs without its own locks (they are the host's): one fetch at a
    // time per suite's root, across mcpod processes too.
    let _lock = root.lock().await?;
    let fresh = root.lists_age().is_some_and(|age| age < LISTS_MAX_AGE);
    if !fresh {
        root.update(progress, cancel).await?;
    }
    let planned = match root.plan(want, cancel).await {
        Err(e) if fresh && not_found(&e) => {
            root.update(progress, cancel).await?;
            root.plan(want, cancel).await?
        }
        other => other?,
    };
    if planned.len() > MAX_PACKAGES {
        return Err(Error::invalid(
            "system_packages",
            want.join(" "),
            format!(
                "they need {} Debian packages, more than the {MAX_PACKAGES} one request may bring",
                planned.len()
            ),
            "ask for fewer packages, or name a base that carries them (--base)",
        ));
    }
    if planned.iter().any(|d| !d.path.is_file()) {
        (progress)(format!(
            "downloading {} Debian {} packages",
            planned.len(),
            suite
        ));
        root.download(want, cancel).await?;
    }
    let mut fetched = Vec::with_capacity(planned.len());
    for mut deb in planned {
        if !deb.path.is_file() {
            return Err(Error::UnexpectedOutput {
                command: format!("apt-get install --download-only ({suite})"),
                reason: format!("{} was not downloaded", deb.path.display()),
            });
        }
        let fields = control(&deb.path, cancel).await?;
        deb.provides = field(&fields, "Provides");
        deb.multi_arch = field(&fields, "Multi-Arch");
        fetched.push(deb);
    }
    Ok(fetched)
}

/// Unpack `debs` into `dir` (created if missing) with `dpkg-deb -x`, then make
/// `/bin`, `/sbin` and `/lib*` links into `/usr` as a merged-/usr system has.
pub async fn unpack(debs: &[Deb], dir: &Path, cancel: &CancellationToken) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    for deb in debs {
        Invocation::new("dpkg-deb")
            .arg("-x")
            .arg(&deb.path)
            .arg(dir)
            .timeout(UNPACK_TIMEOUT)
            .cancel_on(cancel.clone())
            .run()
            .await?;
    }
    merge_usr(dir)
}

/// The fields of a package's control stanza a dpkg status needs.
async fn control(deb: &Path, cancel: &CancellationToken) -> Result<String> {
    let out = Invocation::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .args(["Provides", "Multi-Arch"])
        .timeout(UNPACK_TIMEOUT)
        .cancel_on(cancel.clone())
        .run()
        .await?;
    if out.stdout.len() > 256 * 1024 {
        return Err(Error::UnexpectedOutput {
            command: format!("dpkg-deb -f {}", deb.display()),
            reason: "its control stanza is over 256 KiB".into(),
        });
    }
    Ok(out.stdout)
}

/// Move `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64` and `/libx32` into
/// `/usr` and leave links in their place, as base-files does on a
/// merged-/usr system (bookworm's packages still ship files under `/lib`,
/// trixie's ship them under `/usr` only).
fn merge_usr(dir: &Path) -> Result<()> {
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let top = dir.join(name);
        let usr = dir.join("usr").join(name);
        match std::fs::symlink_metadata(&top) {
            Ok(meta) if meta.file_type().is_symlink() => continue,
            Ok(_) => {
                move_into(&top, &usr)?;
                std::fs::remove_dir_all(&top).map_err(|e| Error::io("removing", &top, e))?;
            }
            // Trixie's packages ship nothing there: base-files makes the links.
            Err(_) if usr.is_dir() => {}
            Err(_) => continue,
        }
        std::os::unix::fs::symlink(format!("usr/{name}"), &top)
            .map_err(|e| Error::io("linking", &top, e))?;
    }
    Ok(())
}

/// Move every entry of `from` into `to`, merging directories.
fn move_into(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("creating", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io("reading", from, e))? {
        let entry = entry.map_err(|e| Error::io("reading", from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("reading", &src, e))?;
        let dst_is_dir = std::fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir());
        if kind.is_dir() && dst_is_dir {
            move_into(&src, &dst)?;
        } else {
            std::fs::rename(&src, &dst).map_err(|e| Error::io("moving", &src, e))?;
        }
    }
    Ok(())
}

fn not_found(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("Unable to locate package")
        || text.contains("has no installation candidate")
        || text.contains("404")
}

/// A suite's private apt root, with the status of one set of installed packages.
struct Root {
    suite: Suite,
    dir: PathBuf,
    status: PathBuf,
}

impl Root {
    /// Write the root's sources list and a dpkg status naming `installed`.
    fn prepare(suite: Suite, installed: &[Deb]) -> Result<Root> {
        let dir = store::state_dir().join("debian").join(suite.as_str());
        for sub in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "status",
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("creating", &d, e))?;
        }
        let mirror = std::env::var("MCPOD_DEBIAN_MIRROR")
            .ok()
            .filter(|m| is_mirror(m))
            .unwrap_or_else(|| DEFAULT_MIRROR.to_string());
        let security = if mirror == DEFAULT_MIRROR {
            format!(
                "deb [signed-by={KEYRING}] http://deb.debian.org/debian-security {suite}-security main\n"
            )
        } else {
            String::new()
        };
        let sources = format!(
            "deb [signed-by={KEYRING}] {mirror} {suite} main\ndeb [signed-by={KEYRING}] {mirror} {suite}-updates main\n{security}"
        );
        write_if_changed(&dir.join("etc/apt/sources.list"), sources.as_bytes())?;
        // One status file per set of installed packages, so concurrent
        // fetches on different bases do not overwrite each other's.
        let bytes = status(installed);
        let status = dir
            .join("status")
            .join(&blake3::hash(&bytes).to_hex()[..16]);
        write_if_changed(&status, &bytes)?;
        Ok(Root { suite, dir, status })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir={d}"),
            format!("-oDir::Etc={d}/etc/apt"),
            format!("-oDir::Etc::sourcelist={d}/etc/apt/sources.list"),
            format!("-oDir::Etc::sourceparts={d}/etc/apt/sources.list.d"),
            format!("-oDir::Etc::parts={d}/etc/apt/apt.conf.d"),
            format!("-oDir::Etc::preferencesparts={d}/etc/apt/preferences.d"),
            format!("-oDir::State={d}/var/lib/apt"),
            format!("-oDir::Cache={d}/var/cache/apt"),
            format!("-oDir::State::status={}", self.status.display()),
            "-oDebug::NoLocking=1".into(),
            "-oAPT::Install-Recommends=0".into(),
            "-oAPT::Install-Suggests=0".into(),
            "-oAcquire::Languages=none".into(),
            "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=0".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=0".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=0".into(),
            "-oAcquire::IndexTargets::deb::CNF::DefaultEnabled=0".into(),
            "-oAPT::Get::AllowUnauthenticated=0".into(),
            // Downloads are checked, and --print-uris names them, by SHA-256.
            "-oAcquire::ForceHash=SHA256".into(),
            "-q".into(),
        ]
    }

    fn lists_age(&self) -> Option<Duration> {
        let stamp = self.dir.join("var/lib/apt/lists/.mcpod-updated");
        let modified = std::fs::metadata(stamp).ok()?.modified().ok()?;
        SystemTime::now().duration_since(modified).ok()
    }

    async fn update(&self, progress: &Progress, cancel: &CancellationToken) -> Result<()> {
        (progress)(format!("refreshing Debian {}'s package lists", self.suite));
        Invocation::new("apt-get")
            .args(self.options())
            .arg("update")
            .timeout(APT_TIMEOUT)
            .cancel_on(cancel.clone())
            .run()
            .await?;
        let stamp = self.dir.join("var/lib/apt/lists/.mcpod-updated");
        std::fs::write(&stamp, b"").map_err(|e| Error::io("writing", &stamp, e))
    }

    /// Hold the root's lock file until the guard drops.
    async fn lock(&self) -> Result<std::fs::File> {
        let path = self.dir.join("lock");
        tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("opening", &path, e))?;
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(Error::io("locking", &path, std::io::Error::last_os_error()));
            }
            Ok(file)
        })
        .await
        .map_err(|e| Error::UnexpectedOutput {
            command: "locking Debian's package root".into(),
            reason: e.to_string(),
        })?
    }

    /// What installing `want` would download: apt's `--print-uris` lines,
    /// asked against an empty download cache (apt leaves out what its cache
    /// holds already), for files in the real one.
    async fn plan(&self, want: &[String], cancel: &CancellationToken) -> Result<Vec<Deb>> {
        let empty = self.dir.join("var/cache/apt/plan");
        let partial = empty.join("partial");
        std::fs::create_dir_all(&partial).map_err(|e| Error::io("creating", &partial, e))?;
        let out = Invocation::new("apt-get")
            .args(self.options())
            .arg(format!("-oDir::Cache::Archives={}/", empty.display()))
            .args(["install", "--print-uris", "-y", "-qq", "--"])
            .args(want)
            .timeout(APT_TIMEOUT)
            .cancel_on(cancel.clone())
            .run()
            .await?;
        let archives = self.dir.join("var/cache/apt/archives");
        out.stdout
            .lines()
            .filter(|l| l.starts_with('\''))
            .map(|line| parse_uri_line(line, &archives))
            .collect()
    }

    async fn download(&self, want: &[String], cancel: &CancellationToken) -> Result<()> {
        Invocation::new("apt-get")
            .args(self.options())
            .args(["install", "--download-only", "-y", "--"])
            .args(want)
            .timeout(APT_TIMEOUT)
            .cancel_on(cancel.clone())
            .run()
            .await
            .map(|_| ())
    }
}

/// `'URI' FILE SIZE SHA256:HEX` → a [`Deb`] in `archives`.
fn parse_uri_line(line: &str, archives: &Path) -> Result<Deb> {
    let bad = || Error::UnexpectedOutput {
        command: "apt-get install --print-uris".into(),
        reason: format!("a line is not `'URI' FILE SIZE HASH`: {line:?}"),
    };
    let mut parts = line.split_whitespace();
    let _uri = parts.next().ok_or_else(bad)?;
    let file = parts.next().ok_or_else(bad)?;
    let _size = parts.next().ok_or_else(bad)?;
    let hash = parts.next().ok_or_else(bad)?;
    let sha256 = hash
        .strip_prefix("SHA256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(bad)?;
    let stem = file.strip_suffix(".deb").ok_or_else(bad)?;
    let mut fields = stem.split('_');
    let (Some(name), Some(version), Some(arch), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let version = version.replace("%3a", ":");
    if file.contains('/') || !is_package(&format!("{name}={version}")) {
        return Err(bad());
    }
    Ok(Deb {
        name: name.to_string(),
        version,
        arch: arch.to_string(),
        sha256: sha256.to_ascii_lowercase(),
        provides: String::new(),
        multi_arch: String::new(),
        path: archives.join(file),
    })
}

/// A field's value in `Name: value` lines (one line each), or empty.
fn field(stanza: &str, name: &str) -> String {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// A dpkg status naming `installed` as installed (with what they provide,
/// so a dependency on a virtual package they provide is met).
fn status(installed: &[Deb]) -> Vec<u8> {
    let mut out = String::new();
    for deb in installed {
        out.push_str(&format!(
            "Package: {}\nStatus: install ok installed\nArchitecture: {}\nVersion: {}\n",
            deb.name, deb.arch, deb.version
        ));
        for (name, value) in [("Provides", &deb.provides), ("Multi-Arch", &deb.multi_arch)] {
            if !value.is_empty() && !value.contains('\n') {
                out.push_str(&format!("{name}: {value}\n"));
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// Only `http://` or `https://` followed by a host and path, no spaces or
/// brackets (the line is apt configuration).
fn is_mirror(m: &str) -> bool {
    (m.starts_with("http://") || m.starts_with("https://"))
        && m.len() < 512
        && m.bytes()
            .all(|b| b.is_ascii_graphic() && !b"[]\"'\\".contains(&b))
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp-{}", crate::engine::nonce()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_debian_policy() {
        for good in [
            "git",
            "libsqlite3-0",
            "g++",
            "python3.13",
            "git=1:2.39.5-0+deb12u2",
        ] {
            assert!(is_package(good), "{good}");
        }
        for bad in [
            "",
            "g",
            "Git",
            "-oDir=/",
            "git;rm",
            "git =1",
            "git=",
            "git=a1",
            "../x",
            "git=1 2",
            &"a".repeat(101),
        ] {
            assert!(!is_package(bad), "{bad}");
        }
    }

    #[test]
    fn print_uris_lines_parse_and_hostile_ones_do_not() {
        let archives = Path::new("/cache");
        let deb = parse_uri_line(
            "'http://deb.debian.org/debian/pool/main/z/zlib/zlib1g_1%3a1.2.13.dfsg-1_amd64.deb' zlib1g_1%3a1.2.13.dfsg-1_amd64.deb 91484 SHA256:d7dd1d1411fedf27f5e27650a6eff20ef294077b568f4c8c5e51466dc7c08ce4",
            archives,
        )
        .expect("parses");
        assert_eq!(deb.name, "zlib1g");
        assert_eq!(deb.version, "1:1.2.13.dfsg-1");
        assert_eq!(
            deb.path,
            archives.join("zlib1g_1%3a1.2.13.dfsg-1_amd64.deb")
        );
        for bad in [
            "'u' ../../etc/passwd.deb 1 SHA256:d7dd1d1411fedf27f5e27650a6eff20ef294077b568f4c8c5e51466dc7c08ce4",
            "'u' a_1_amd64.deb 1 MD5Sum:abc",
            "'u' a_1_amd64_x.deb 1 SHA256:d7dd1d1411fedf27f5e27650a6eff20ef294077b568f4c8c5e51466dc7c08ce4",
            "'u'",
        ] {
            assert!(parse_uri_line(bad, archives).is_err(), "{bad}");
        }
    }

    #[test]
    fn mirrors_are_plain_urls() {
        assert!(is_mirror("http://deb.debian.org/debian"));
        assert!(!is_mirror("http://x/ trixie main\ndeb http://evil"));
        assert!(!is_mirror("[trusted=yes] http://x"));
        assert!(!is_mirror("file:///etc"));
    }

    #[test]
    fn a_merged_usr_tree_links_lib_into_usr() {
        let dir = std::env::temp_dir().join(format!("mcpod-merge-{}", crate::engine::nonce()));
        std::fs::create_dir_all(dir.join("lib/x86_64-linux-gnu")).expect("dir");
        std::fs::create_dir_all(dir.join("usr/lib/x86_64-linux-gnu")).expect("dir");
        std::fs::write(dir.join("lib/x86_64-linux-gnu/libc.so.6"), b"c").expect("write");
        std::fs::write(dir.join("usr/lib/x86_64-linux-gnu/libz.so.1"), b"z").expect("write");
        merge_usr(&dir).expect("merges");
        assert!(
            std::fs::symlink_metadata(dir.join("lib"))
                .expect("lib")
                .file_type()
                .is_symlink()
        );
        assert!(dir.join("lib/x86_64-linux-gnu/libc.so.6").is_file());
        assert!(dir.join("usr/lib/x86_64-linux-gnu/libz.so.1").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
