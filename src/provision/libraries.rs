//! The libraries a staged package's own programs load that its base lacks.
//!
//! After a package is staged, every ELF file in the staged tree is found
//! (links never followed, the walk and the reads bounded) and its
//! `DT_NEEDED` libraries read from its headers ([`super::elf`]; nothing the
//! package carries is run, not even `ldd`). A library is there when the base
//! has a file of that name in its library directories (listed once per base
//! image, in a container), or the package carries it beside the program or
//! in a directory its `$ORIGIN` run path names. What is left is taken from
//! where the base's own libraries came from: for a base mcpod made from the
//! host's programs or node's official binaries, the host's library
//! directories, with what those load in turn (`ldd` on the host's own
//! libraries). They are staged under `ctx/sys/` at their host paths, so they
//! are part of the build context and of the image's key, and one `COPY`
//! line puts them in the image. A library found nowhere is a warning naming
//! the file that needs it, not a failure: the server may never load it.
//!
//! .NET single-file programs load ICU at start and OpenSSL on first use
//! without naming them: for one, the server runs with
//! `DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1` (no ICU) and OpenSSL's
//! libraries are added like the ones it names.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bases::{self, Base, Pick};
use super::elf;
use super::rootfs::Rootfs;
use crate::engine::runtime;
use crate::image::Progress;
use crate::{Error, Result};

/// Where the added libraries are staged, inside the build context.
pub const SYS_DIR: &str = "sys";
/// What was added and found, beside the context (not in it, not in the key).
const RECORD: &str = "libraries.json";
/// The environment a .NET single-file program runs with: no ICU needed.
pub const DOTNET_ENV: (&str, &str) = ("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1");

/// How far the walk of a staged tree goes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Entries (files, directories, links) looked at.
    pub entries: usize,
    /// ELF files whose headers are read.
    pub elves: usize,
    /// A file larger than this is not opened.
    pub file_bytes: u64,
    /// Directories deep.
    pub depth: usize,
    /// Bytes read in all looking for a .NET program's marker.
    pub marker_bytes: u64,
}

pub const LIMITS: Limits = Limits {
    entries: 250_000,
    elves: 5_000,
    file_bytes: 1 << 30,
    depth: 64,
    marker_bytes: 256 << 20,
};

/// How much of an executable is searched for the .NET marker.
const MARKER_SPAN: u64 = 16 << 20;
/// A name only .NET's own hosts and runtimes carry: the platform library
/// its runtime loads (statically linked into single-file programs, named
/// all the same).
const DOTNET_MARKER: &[u8] = b"libSystem.Native";
/// What .NET's runtime loads without naming it in `DT_NEEDED`, beyond ICU
/// (which the invariant mode spares): OpenSSL, whose absence ends the
/// process as soon as anything uses TLS or a hash.
const DOTNET_LOADS: &[&str] = &["libssl.so.3", "libcrypto.so.3"];

/// What a staged tree's ELF files load that it does not carry itself.
#[derive(Debug, Default)]
pub struct Scan {
    /// Each library the tree's programs name and do not carry (and the base
    /// lacks), with the first file (relative to the tree) that names it.
    pub missing: BTreeMap<String, String>,
    /// .NET single-file programs (relative paths).
    pub dotnet: Vec<String>,
    /// ELF files read.
    pub elves: usize,
    pub warnings: Vec<String>,
}

/// Read every ELF file under `tree` for the libraries it names that
/// neither `base` (file names in its library directories) nor the tree has.
pub fn scan(tree: &Path, base: &HashSet<String>, limits: &Limits) -> Scan {
    let mut out = Scan::default();
    let machine = elf::host_machine();
    let walked = walk(tree, limits, &mut out.warnings);
    let mut marker_budget = limits.marker_bytes;
    for rel in walked.candidates {
        let path = tree.join(&rel);
        let mut head = [0u8; 4];
        if !open_nofollow(&path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|()| elf::is_elf(&head))
        {
            continue;
        }
        if out.elves >= limits.elves {
            out.warnings.push(format!(
                "only the first {} ELF files of the staged package were read for the libraries they load",
                limits.elves
            ));
            break;
        }
        out.elves += 1;
        let needs = match elf::needs(&path) {
            Ok(needs) => needs,
            Err(e) => {
                out.warnings.push(format!(
                    "{}: the libraries it loads were not read ({e}); none are added for it",
                    shown(&rel)
                ));
                continue;
            }
        };
        if Some(needs.machine) != machine {
            continue; // another platform's program, never run here
        }
        note_missing(&rel, &needs, base, &walked.carried, &mut out);
        if let Some(interp) = &needs.interpreter {
            note_interpreted(&path, &rel, interp, base, &mut marker_budget, &mut out);
        }
    }
    out
}

/// What one walk of a staged tree found.
struct Walked {
    /// Library-like names in the tree (files and links), by relative path.
    carried: HashSet<PathBuf>,
    /// Files that may be ELF programs or libraries (library-like, executable
    /// or `.node`, and not too large), sorted.
    candidates: Vec<PathBuf>,
}

/// Walk `tree` (links never followed, entries and depth bounded) for the
/// library names it carries and the files worth reading; what the bounds
/// left out is a warning in `warnings`.
fn walk(tree: &Path, limits: &Limits, warnings: &mut Vec<String>) -> Walked {
    let mut carried: HashSet<PathBuf> = HashSet::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    let mut too_large: Vec<String> = Vec::new();
    let mut entries = 0usize;
    let mut stack = vec![(PathBuf::new(), 0usize)];
    'walk: while let Some((rel_dir, depth)) = stack.pop() {
        let Ok(listing) = fs::read_dir(tree.join(&rel_dir)) else {
            continue;
        };
        for entry in listing.flatten() {
            entries += 1;
            if entries > limits.entries {
                warnings.push(format!(
                    "only the first {} files of the staged package were looked at for the libraries its programs load",
                    limits.entries
                ));
                break 'walk;
            }
            let rel = rel_dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let library_like = name.contains(".so");
            if kind.is_dir() {
                if depth < limits.depth {
                    stack.push((rel, depth + 1));
                }
            } else if kind.is_symlink() {
                if library_like {
                    carried.insert(rel);
                }
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                let executable = meta.permissions().mode() & 0o111 != 0;
                if library_like {
                    carried.insert(rel.clone());
                }
                if !(library_like || executable || name.ends_with(".node")) {
                    continue;
                }
                if meta.len() > limits.file_bytes {
                    too_large.push(shown(&rel));
                    continue;
                }
                candidates.push(rel);
            }
        }
    }
    if !too_large.is_empty() {
        warnings.push(format!(
            "{} files over {} MB were not read for the libraries they load: {}",
            too_large.len(),
            limits.file_bytes / 1_000_000,
            too_large[..too_large.len().min(3)].join(", ")
        ));
    }
    candidates.sort();
    Walked {
        carried,
        candidates,
    }
}

/// Record in `out.missing` each library the ELF file `rel` names that
/// neither the base nor the tree carries (beside the file or in a directory
/// its `$ORIGIN` run path names); a name that is no library's is a warning.
fn note_missing(
    rel: &Path,
    needs: &elf::Needs,
    base: &HashSet<String>,
    carried: &HashSet<PathBuf>,
    out: &mut Scan,
) {
    let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut search = vec![dir.clone()];
    for entry in needs.search_path.as_deref().unwrap_or("").split(':') {
        if let Some(d) = origin_dir(&dir, entry) {
            search.push(d);
        }
    }
    for lib in &needs.libraries {
        if base.contains(lib) || search.iter().any(|d| carried.contains(&d.join(lib))) {
            continue;
        }
        if !plausible(lib) {
            out.warnings.push(format!(
                "{} names the library {:?}, which is not a library's name; it is not looked for",
                shown(rel),
                lib
            ));
            continue;
        }
        out.missing.entry(lib.clone()).or_insert_with(|| shown(rel));
    }
}

/// For a program run by the loader `interp`: warn when the base lacks that
/// loader, and when the program is a .NET single-file one (its marker found
/// within what is left of `marker_budget`), record it and the libraries
/// .NET loads without naming them.
fn note_interpreted(
    path: &Path,
    rel: &Path,
    interp: &str,
    base: &HashSet<String>,
    marker_budget: &mut u64,
    out: &mut Scan,
) {
    let name = Path::new(interp)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    if name.is_none_or(|n| !base.contains(&n)) {
        out.warnings.push(format!(
            "{} is run by the program loader {:?}, which the base lacks: it will not start (a program built for another C library?)",
            shown(rel),
            interp
        ));
    }
    let budget = (*marker_budget).min(MARKER_SPAN);
    let (found, read) = contains_marker(path, budget);
    *marker_budget -= read;
    if found {
        out.dotnet.push(shown(rel));
        for lib in DOTNET_LOADS.iter().filter(|l| !base.contains(**l)) {
            out.missing
                .entry(lib.to_string())
                .or_insert_with(|| shown(rel));
        }
    }
}

/// A `DT_RUNPATH` entry relative to the program's own directory (`$ORIGIN`,
/// `${ORIGIN}`), as a path inside the tree; `None` for any other entry or one
/// that leaves the tree.
fn origin_dir(dir: &Path, entry: &str) -> Option<PathBuf> {
    let rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"))?;
    let mut out: Vec<Component> = dir.components().collect();
    for part in Path::new(rest.trim_start_matches('/')).components() {
        match part {
            Component::Normal(_) => out.push(part),
            Component::ParentDir => {
                out.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out.iter().collect())
}

/// A library's file name as a host directory may hold it.
fn plausible(name: &str) -> bool {
    name.len() <= 255
        && name.starts_with("lib")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        && !name.contains("..")
}

fn shown(rel: &Path) -> String {
    format!("{:?}", rel.to_string_lossy())
        .trim_matches('"')
        .to_string()
}

fn open_nofollow(path: &Path) -> std::io::Result<fs::File> {
    fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Whether the first `budget` bytes of `path` hold the .NET marker; and how
/// many were read.
fn contains_marker(path: &Path, budget: u64) -> (bool, u64) {
    let Ok(f) = open_nofollow(path) else {
        return (false, 0);
    };
    let mut f = f.take(budget);
    let mut buf = vec![0u8; 1 << 20];
    let keep = DOTNET_MARKER.len() - 1;
    let (mut filled, mut read) = (0usize, 0u64);
    loop {
        let n = match f.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return (false, read),
            Ok(n) => n,
        };
        read += n as u64;
        filled += n;
        if buf[..filled]
            .windows(DOTNET_MARKER.len())
            .any(|w| w == DOTNET_MARKER)
        {
            return (true, read);
        }
        if filled > keep {
            buf.copy_within(filled - keep..filled, 0);
            filled = keep;
        }
    }
}

/// What gathering found for a staged tree, recorded beside it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// The base image the tree was checked against.
    pub base: String,
    /// The host files added (their image paths).
    pub added: Vec<PathBuf>,
    /// .NET single-file programs in the tree.
    pub dotnet: Vec<String>,
    /// Libraries not found, files not read.
    pub warnings: Vec<String>,
}

/// The library directories a base is listed in.
fn base_dirs() -> Vec<String> {
    let arch = std::env::consts::ARCH;
    vec![
        "/lib".into(),
        "/lib64".into(),
        "/usr/lib".into(),
        "/usr/lib64".into(),
        format!("/lib/{arch}-linux-gnu"),
        format!("/usr/lib/{arch}-linux-gnu"),
        "/usr/local/lib".into(),
    ]
}

/// The file names in `base`'s library directories, listed once per image.
async fn base_libraries(base: &Base) -> std::result::Result<HashSet<String>, String> {
    let id = &base.image_id[..base.image_id.len().min(16)];
    let path = bases::bases_dir().join(format!("libraries-{id}.json"));
    if let Some(names) = bases::read_json::<Vec<String>>(&path) {
        return Ok(names.into_iter().collect());
    }
    let dirs = base_dirs();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let mut names = bases::operator::list_libraries(base.runtime, &base.image_id, &dirs).await?;
    names.retain(|n| n.len() <= 255 && !n.contains('/'));
    names.truncate(100_000);
    names.sort();
    names.dedup();
    let _ = bases::write_json(&path, &names);
    Ok(names.into_iter().collect())
}

/// Add to the staged tree's `ctx` the libraries its programs load that
/// `base` lacks, once per staged tree, and record what was done beside it:
/// the libraries are staged beside the context and renamed into it, so a
/// cancelled gathering leaves nothing half-written in it. What it adds to
/// the server, from the record.
pub async fn gather(staged: &Path, base: &Base, progress: &Progress) -> Result<Gathered> {
    let record_path = staged.join(RECORD);
    if !record_path.is_file()
        && let Some(failed) = gather_once(staged, base, progress).await?
    {
        return Ok(Gathered {
            warnings: vec![failed],
            ..Gathered::default()
        });
    }
    Ok(recorded(staged, base))
}

/// What gathering adds to the server.
#[derive(Debug, Default)]
pub struct Gathered {
    pub notes: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    /// Whether `ctx/sys` is there, for the Containerfile to copy.
    pub sys: bool,
}

impl Gathered {
    /// Add to the server's notes, warnings and environment (a variable the
    /// server already has is kept); whether the Containerfile copies `sys/`.
    pub fn apply(
        self,
        notes: &mut Vec<String>,
        warnings: &mut Vec<String>,
        env: &mut BTreeMap<String, String>,
    ) -> bool {
        notes.extend(self.notes);
        warnings.extend(self.warnings);
        for (name, value) in self.env {
            env.entry(name).or_insert(value);
        }
        self.sys
    }
}

/// Gather and record; `Some(warning)` when it could not be done (not
/// recorded: tried again next time).
async fn gather_once(staged: &Path, base: &Base, progress: &Progress) -> Result<Option<String>> {
    let record_path = staged.join(RECORD);
    let ctx = staged.join("ctx");
    let mut record = Record {
        base: base.image_id.clone(),
        ..Record::default()
    };
    let have = match base_libraries(base).await {
        Ok(have) => have,
        Err(why) => {
            return Ok(Some(format!(
                "the libraries of the base {} could not be listed ({why}); none the package's programs load were added",
                base.id
            )));
        }
    };
    let tree = ctx.clone();
    let scan = tokio::task::spawn_blocking(move || scan(&tree, &have, &LIMITS))
        .await
        .map_err(|e| Error::UnexpectedOutput {
            command: "reading the staged package's programs".into(),
            reason: e.to_string(),
        })?;
    record.warnings = scan.warnings;
    record.dotnet = scan.dotnet;
    if !scan.missing.is_empty() {
        (progress)(format!(
            "the package's programs load {} libraries the base lacks: {}",
            scan.missing.len(),
            scan.missing.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        let from_host = matches!(Pick::from_id(&base.id), Some(Pick::Host(_) | Pick::Node(_)));
        if from_host {
            let (added, more) = from_host_dirs(&scan.missing, staged, base).await?;
            record.added = added;
            record.warnings.extend(more);
        } else {
            for (lib, file) in &scan.missing {
                record.warnings.push(format!(
                    "{file} loads {lib}, which the base {} lacks: mcpod adds libraries only to the bases it makes from the host's programs, so the program may fail when it loads it",
                    base.id
                ));
            }
        }
    }
    bases::write_json(&record_path, &record)?;
    Ok(None)
}

/// Copy `missing` from the host's library directories (with what they load)
/// into `ctx/sys`; the files added, and a warning per library not found.
async fn from_host_dirs(
    missing: &BTreeMap<String, String>,
    staged: &Path,
    base: &Base,
) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let dirs = bases::host::library_dirs().await?;
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    for (lib, file) in missing {
        match dirs.iter().map(|d| d.join(lib)).find(|p| p.is_file()) {
            Some(path) => found.push(path),
            None => warnings.push(format!(
                "{file} loads {lib}, which neither the base {} nor the host has (looked in {}): the program may fail when it loads it",
                base.id,
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if found.is_empty() {
        return Ok((found, warnings));
    }
    let have = base_libraries(base).await.unwrap_or_default();
    let mut all: BTreeSet<PathBuf> = match runtime::libraries(&found).await {
        Ok(all) => all,
        Err(e) => {
            warnings.push(format!(
                "what the host's {} load in turn was not found ({e}); only they are added",
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            BTreeSet::new()
        }
    };
    all.retain(|p| {
        p.file_name()
            .is_none_or(|n| !have.contains(&*n.to_string_lossy()))
    });
    all.extend(found);
    let added: Vec<PathBuf> = all.into_iter().collect();
    let copy = added.clone();
    let staging = staged.join(format!("{SYS_DIR}.tmp-{}", crate::engine::nonce()));
    let sys = staged.join("ctx").join(SYS_DIR);
    // The copy runs to its end and cleans up even when provisioning is
    // cancelled meanwhile.
    tokio::task::spawn_blocking(move || {
        let copied = Rootfs::create(&staging)
            .and_then(|mut rootfs| copy.iter().try_for_each(|lib| rootfs.copy_file(lib, lib)));
        let done = copied.and_then(|()| match fs::rename(&staging, &sys) {
            Ok(()) => Ok(()),
            // Another provisioning got there first, with the same files.
            Err(_) if sys.is_dir() => Ok(()),
            Err(e) => Err(Error::io("renaming", &staging, e)),
        });
        let _ = fs::remove_dir_all(&staging);
        done
    })
    .await
    .map_err(|e| Error::UnexpectedOutput {
        command: "staging the libraries the package loads".into(),
        reason: e.to_string(),
    })??;
    Ok((added, warnings))
}

/// What a staged tree's record adds to the server: notes, environment, and
/// a warning when the tree was checked against another base.
fn recorded(staged: &Path, base: &Base) -> Gathered {
    let mut out = Gathered {
        sys: staged.join("ctx").join(SYS_DIR).is_dir(),
        ..Gathered::default()
    };
    let Some(record) = bases::read_json::<Record>(&staged.join(RECORD)) else {
        return out;
    };
    if !record.added.is_empty() {
        out.notes.push(format!(
            "added the host libraries the package's programs load and the base lacks: {}",
            record
                .added
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(first) = record.dotnet.first() {
        out.env
            .insert(DOTNET_ENV.0.to_string(), DOTNET_ENV.1.to_string());
        out.notes.push(format!(
            "{first} is a .NET program: it runs with {}={} (no ICU; culture-specific formatting is invariant)",
            DOTNET_ENV.0, DOTNET_ENV.1
        ));
    }
    out.warnings = record.warnings;
    if record.base != base.image_id {
        out.warnings.push(format!(
            "the package's staged files were checked for the libraries they load against another base than {}: a library this one lacks may be missing",
            base.id
        ));
    }
    out
}

#[cfg(test)]
#[path = "libraries_tests.rs"]
mod tests;
