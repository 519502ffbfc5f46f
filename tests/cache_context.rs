//! The build-context digest on real trees: what changes it, what does not, and
//! the stat cache.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use mcpod::Error;
use mcpod::cache::{ContextDigest, hash_context};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Longer than the stat cache's racy-clean window (2 s).
const SETTLE: Duration = Duration::from_millis(2300);

fn write(root: &Path, rel: &str, content: &[u8]) -> std::io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}

fn chmod(root: &Path, rel: &str, mode: u32) -> std::io::Result<()> {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode))
}

fn set_mtime(root: &Path, rel: &str, when: SystemTime) -> std::io::Result<()> {
    fs::File::options()
        .write(true)
        .open(root.join(rel))?
        .set_modified(when)
}

fn digest(root: &Path) -> Result<[u8; 32], Error> {
    Ok(hash_context(root, None, None)?.digest)
}

/// A small tree with a bit of everything.
fn sample(root: &Path) -> std::io::Result<()> {
    write(root, "Containerfile", b"FROM scratch\nCOPY . /app\n")?;
    write(root, "a.txt", b"alpha\n")?;
    write(root, "bin/run.sh", b"#!/bin/sh\necho hi\n")?;
    chmod(root, "bin/run.sh", 0o644)?;
    write(root, "src/deep/nested/lib.rs", b"pub fn f() {}\n")?;
    symlink("../a.txt", root.join("src/link"))?;
    Ok(())
}

#[test]
fn content_exec_bit_and_name_change_the_digest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    let base = hash_context(root, None, None)?;
    assert_eq!(base.files, 4);
    assert_eq!(base.bytes, 25 + 6 + 18 + 14);
    assert_eq!(base.ignore_file, None);
    assert_eq!(base.digest, digest(root)?, "the digest is deterministic");

    write(root, "a.txt", b"alphA\n")?;
    assert_ne!(digest(root)?, base.digest, "content");
    write(root, "a.txt", b"alpha\n")?;
    assert_eq!(digest(root)?, base.digest, "same content again, new mtime");

    chmod(root, "bin/run.sh", 0o755)?;
    assert_ne!(digest(root)?, base.digest, "executable bit");
    chmod(root, "bin/run.sh", 0o744)?;
    let owner_only = digest(root)?;
    assert_ne!(owner_only, base.digest, "owner executable bit");
    chmod(root, "bin/run.sh", 0o644)?;
    assert_eq!(digest(root)?, base.digest);

    fs::rename(root.join("a.txt"), root.join("b.txt"))?;
    assert_ne!(digest(root)?, base.digest, "name");
    fs::rename(root.join("b.txt"), root.join("a.txt"))?;
    assert_eq!(digest(root)?, base.digest);

    // Moving a file to another directory with the same name changes it too.
    fs::rename(
        root.join("src/deep/nested/lib.rs"),
        root.join("src/deep/lib.rs"),
    )?;
    assert_ne!(digest(root)?, base.digest, "path");
    Ok(())
}

#[test]
fn symlinks_by_target_text_and_empty_dirs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    let base = digest(root)?;

    fs::remove_file(root.join("src/link"))?;
    symlink("../bin/run.sh", root.join("src/link"))?;
    assert_ne!(digest(root)?, base, "symlink target");
    fs::remove_file(root.join("src/link"))?;
    symlink("../a.txt", root.join("src/link"))?;
    assert_eq!(digest(root)?, base);

    // The link is not followed: changing what it points at changes only a.txt.
    write(root, "a.txt", b"other\n")?;
    let changed = digest(root)?;
    fs::remove_file(root.join("src/link"))?;
    write(root, "src/link", b"other\n")?;
    assert_ne!(
        digest(root)?,
        changed,
        "a file with the target's content is not a symlink"
    );
    fs::remove_file(root.join("src/link"))?;
    symlink("../a.txt", root.join("src/link"))?;
    write(root, "a.txt", b"alpha\n")?;
    assert_eq!(digest(root)?, base);

    // Dangling symlinks are fine.
    symlink("/nonexistent/target", root.join("dangling"))?;
    let dangling = digest(root)?;
    assert_ne!(dangling, base);
    fs::remove_file(root.join("dangling"))?;

    fs::create_dir(root.join("empty"))?;
    assert_ne!(digest(root)?, base, "an empty directory counts");
    fs::remove_dir(root.join("empty"))?;
    assert_eq!(digest(root)?, base);

    // An empty file is not an empty directory.
    write(root, "empty", b"")?;
    assert_ne!(digest(root)?, base);
    Ok(())
}

#[test]
fn mtime_and_non_exec_permissions_do_not_count() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    let base = digest(root)?;

    let past = SystemTime::now() - Duration::from_secs(86_400 * 30);
    set_mtime(root, "a.txt", past)?;
    set_mtime(
        root,
        "src/deep/nested/lib.rs",
        past + Duration::from_nanos(1),
    )?;
    assert_eq!(digest(root)?, base, "mtime");

    chmod(root, "a.txt", 0o640)?;
    assert_eq!(digest(root)?, base, "644 -> 640");
    chmod(root, "a.txt", 0o600)?;
    assert_eq!(digest(root)?, base, "640 -> 600");
    Ok(())
}

#[test]
fn sockets_are_skipped_as_buildah_skips_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    let base = digest(root)?;
    let _listener = std::os::unix::net::UnixListener::bind(root.join("daemon.sock"))?;
    assert_eq!(digest(root)?, base);
    Ok(())
}

#[test]
fn ignored_files_do_not_count() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    write(root, ".containerignore", b"# build output\n*.log\n/build\n")?;
    write(root, "debug.log", b"1\n")?;
    write(root, "build/out/app", b"binary")?;
    let base = hash_context(root, None, None)?;
    assert_eq!(
        base.ignore_file.as_deref(),
        Some(root.join(".containerignore").as_path())
    );
    assert_eq!(
        base.files, 5,
        "the four sample files and the ignore file itself"
    );

    write(root, "debug.log", b"2\n")?;
    write(root, "build/out/app", b"another binary")?;
    write(root, "build/new", b"")?;
    fs::create_dir(root.join("build/empty"))?;
    assert_eq!(digest(root)?, base.digest, "changes under ignored paths");

    write(
        root,
        "src/trace.log",
        b"nested logs are not matched by `*.log`",
    )?;
    assert_ne!(digest(root)?, base.digest);
    Ok(())
}

#[test]
fn the_ignore_file_is_part_of_the_context() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    write(root, ".containerignore", b"*.log\n")?;
    let base = digest(root)?;

    // buildah sends the ignore file itself, so editing it changes the context
    // even when the file set stays the same.
    write(root, ".containerignore", b"# logs\n*.log\n")?;
    assert_ne!(digest(root)?, base);

    // Unless it excludes itself: then only a change of the file set counts.
    write(root, ".containerignore", b"*.log\n.containerignore\n")?;
    let self_excluded = hash_context(root, None, None)?;
    assert_eq!(self_excluded.files, 4);
    write(
        root,
        ".containerignore",
        b"# comment\n*.log\n.containerignore\n",
    )?;
    assert_eq!(digest(root)?, self_excluded.digest, "a comment only");
    write(root, ".containerignore", b"*.log\n.containerignore\n*.md\n")?;
    assert_eq!(
        digest(root)?,
        self_excluded.digest,
        "a rule that matches nothing"
    );
    write(
        root,
        ".containerignore",
        b"*.log\n.containerignore\n*.txt\n",
    )?;
    assert_ne!(
        digest(root)?,
        self_excluded.digest,
        "a rule that drops a.txt"
    );
    Ok(())
}

#[test]
fn containerignore_wins_over_dockerignore() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    write(root, ".dockerignore", b"a.txt\n.dockerignore\n")?;
    let docker = hash_context(root, None, None)?;
    assert_eq!(
        docker.ignore_file.as_deref(),
        Some(root.join(".dockerignore").as_path())
    );
    assert_eq!(docker.files, 3);

    write(
        root,
        ".containerignore",
        b".containerignore\n.dockerignore\n",
    )?;
    let container = hash_context(root, None, None)?;
    assert_eq!(
        container.ignore_file.as_deref(),
        Some(root.join(".containerignore").as_path())
    );
    assert_eq!(
        container.files, 4,
        ".dockerignore is not read, a.txt is back"
    );
    Ok(())
}

/// `<Containerfile>.dockerignore`, else `<Containerfile>.containerignore`,
/// replaces the context's ignore files (buildah's precedence); a relative
/// Containerfile path is taken from the context root.
#[test]
fn the_containerfiles_own_ignore_file_wins() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    write(root, ".containerignore", b"a.txt\n")?;
    let cf = Path::new("Containerfile");
    assert_eq!(hash_context(root, Some(cf), None)?.files, 4, "a.txt is out");

    write(root, "Containerfile.containerignore", b"bin/\n")?;
    let own = hash_context(root, Some(cf), None)?;
    assert_eq!(
        own.ignore_file.as_deref(),
        Some(root.join("Containerfile.containerignore").as_path())
    );
    // a.txt is back, bin/run.sh is out, the new ignore file itself is in.
    assert_eq!(own.files, 5);

    write(root, "Containerfile.dockerignore", b"src/\n")?;
    let docker = hash_context(root, Some(&root.join("Containerfile")), None)?;
    assert_eq!(
        docker.ignore_file.as_deref(),
        Some(root.join("Containerfile.dockerignore").as_path())
    );
    assert_eq!(docker.files, 6, "src/ is out, everything else is in");
    // Without a Containerfile, the context's own file applies.
    assert_eq!(hash_context(root, None, None)?.files, 6);
    Ok(())
}

#[test]
fn reinclude_inside_an_excluded_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    write(
        root,
        ".containerignore",
        b".containerignore\ndocs\n!docs/keep.md\nvendor\n!**/*.go\n",
    )?;
    write(root, "docs/keep.md", b"keep")?;
    write(root, "docs/drop.md", b"drop")?;
    write(root, "vendor/x/y/mod.go", b"package y")?;
    write(root, "vendor/x/y/mod.c", b"int y;")?;
    let base = hash_context(root, None, None)?;
    assert_eq!(base.files, 2, "docs/keep.md and vendor/x/y/mod.go");

    write(root, "docs/drop.md", b"changed")?;
    write(root, "vendor/x/y/mod.c", b"changed")?;
    assert_eq!(digest(root)?, base.digest);
    write(root, "docs/keep.md", b"changed")?;
    let keep_changed = digest(root)?;
    assert_ne!(keep_changed, base.digest);
    write(root, "vendor/x/y/mod.go", b"changed")?;
    assert_ne!(digest(root)?, keep_changed);
    Ok(())
}

#[test]
fn invalid_ignore_pattern_is_an_error_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    write(root, ".dockerignore", b"ok\nbad[\n")?;
    match hash_context(root, None, None) {
        Err(Error::InvalidInput { field, value, .. }) => {
            assert!(field.contains(".dockerignore"), "{field}");
            assert_eq!(value, "bad[");
        }
        other => panic!("expected an invalid-pattern error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn context_root_must_be_a_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing");
    assert!(matches!(
        hash_context(&missing, None, None),
        Err(Error::InvalidInput { ref field, ref value, .. }) if field == "context" && value.contains("missing")
    ));
    write(dir.path(), "file", b"x")?;
    assert!(matches!(
        hash_context(&dir.path().join("file"), None, None),
        Err(Error::InvalidInput { ref field, .. }) if field == "context"
    ));
    Ok(())
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    write(root, "secret", b"s")?;
    chmod(root, "secret", 0o000)?;
    if fs::File::open(root.join("secret")).is_ok() {
        // Running with CAP_DAC_OVERRIDE (root): permissions cannot make this fail.
        return Ok(());
    }
    match hash_context(root, None, None) {
        Err(Error::Io { path, .. }) => assert_eq!(path, root.join("secret")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    chmod(root, "secret", 0o644)?;
    Ok(())
}

#[test]
fn empty_context() -> TestResult {
    let dir = tempfile::tempdir()?;
    let empty = hash_context(dir.path(), None, None)?;
    assert_eq!((empty.files, empty.bytes), (0, 0));
    fs::create_dir(dir.path().join("d"))?;
    assert_ne!(digest(dir.path())?, empty.digest);
    Ok(())
}

fn cached(root: &Path, cache: &Path) -> Result<ContextDigest, Error> {
    hash_context(root, None, Some(cache))
}

#[test]
fn stat_cache_warm_runs_read_nothing_and_notice_changes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("ctx");
    let cache = dir.path().join("state/stat/ctx");
    sample(&root)?;
    for i in 0..50 {
        write(
            &root,
            &format!("many/{i:02}.txt"),
            format!("file {i}\n").as_bytes(),
        )?;
    }
    let cold = hash_context(&root, None, None)?;
    assert_eq!(cold.cached_files, 0);
    assert_eq!(cold.read_bytes, cold.bytes);

    // Files written just now are "racy": the cache is written, but not trusted yet.
    let first = cached(&root, &cache)?;
    assert!(
        cache.is_file(),
        "the cache file is written, its directory created"
    );
    assert_eq!(first.digest, cold.digest);
    assert_eq!(first.cached_files, 0);
    let racy = cached(&root, &cache)?;
    assert_eq!(racy.digest, cold.digest);
    assert_eq!(
        racy.cached_files, 0,
        "entries within 2 s of the cache's scan are re-read"
    );

    std::thread::sleep(SETTLE);
    let settled = cached(&root, &cache)?;
    assert_eq!(settled.digest, cold.digest);
    assert_eq!(
        settled.cached_files, 0,
        "still racy against the old scan time; this run rewrites it"
    );
    let warm = cached(&root, &cache)?;
    assert_eq!(warm.digest, cold.digest);
    assert_eq!(warm.files, cold.files);
    assert_eq!(warm.bytes, cold.bytes);
    assert_eq!(warm.cached_files, warm.files, "a warm run only stats");
    assert_eq!(warm.read_bytes, 0);

    // An unchanged tree does not rewrite the cache.
    let before = fs::metadata(&cache)?.modified()?;
    let again = cached(&root, &cache)?;
    assert_eq!(again.cached_files, again.files);
    assert_eq!(fs::metadata(&cache)?.modified()?, before);

    // Same size, new content, mtime bumped: re-read.
    let original_mtime = fs::metadata(root.join("many/07.txt"))?.modified()?;
    write(&root, "many/07.txt", b"FILE 7\n")?;
    set_mtime(
        &root,
        "many/07.txt",
        original_mtime + Duration::from_secs(1),
    )?;
    let modified = cached(&root, &cache)?;
    assert_ne!(modified.digest, cold.digest);
    assert_eq!(modified.digest, digest(&root)?);
    assert_eq!(modified.cached_files, modified.files - 1);
    assert_eq!(modified.read_bytes, 7);

    // Same size, new content, mtime put back exactly: the ctime still gives it away.
    write(&root, "many/08.txt", b"FILE 8\n")?;
    set_mtime(
        &root,
        "many/08.txt",
        fs::metadata(root.join("many/09.txt"))?.modified()?,
    )?;
    let sneaky = cached(&root, &cache)?;
    assert_eq!(sneaky.digest, digest(&root)?);
    assert_ne!(sneaky.digest, modified.digest);

    // A deleted file and a new one.
    fs::remove_file(root.join("many/00.txt"))?;
    write(&root, "many/new.txt", b"new\n")?;
    let changed = cached(&root, &cache)?;
    assert_eq!(changed.digest, digest(&root)?);
    assert_eq!(changed.files, cold.files);
    Ok(())
}

#[test]
fn corrupt_stat_cache_is_ignored_and_replaced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("ctx");
    let cache = dir.path().join("cache");
    sample(&root)?;
    std::thread::sleep(SETTLE);
    let cold = digest(&root)?;

    fs::write(&cache, b"MCPODSC1 but then garbage")?;
    let first = cached(&root, &cache)?;
    assert_eq!(first.digest, cold);
    assert_eq!(first.cached_files, 0);
    let second = cached(&root, &cache)?;
    assert_eq!(second.digest, cold);
    assert_eq!(
        second.cached_files, second.files,
        "the corrupt file was replaced by a good one"
    );

    // Truncate the good file: ignored again, never an error.
    let bytes = fs::read(&cache)?;
    fs::write(&cache, &bytes[..bytes.len() / 2])?;
    let third = cached(&root, &cache)?;
    assert_eq!((third.digest, third.cached_files), (cold, 0));

    // A directory where the cache file should be: the digest is still right.
    fs::remove_file(&cache)?;
    fs::create_dir(&cache)?;
    assert_eq!(cached(&root, &cache)?.digest, cold);
    Ok(())
}

#[test]
fn stat_cache_inside_the_context_is_left_out() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    sample(root)?;
    let cold = digest(root)?;
    let cache = root.join(".mcpod-stat");
    let first = cached(root, &cache)?;
    assert!(cache.is_file());
    assert_eq!(first.digest, cold);
    assert_eq!(cached(root, &cache)?.digest, cold);
    // Through a path that is not canonical, too.
    let roundabout = root.join("src/../.mcpod-stat");
    assert_eq!(cached(root, &roundabout)?.digest, cold);
    Ok(())
}

#[test]
fn a_cache_for_another_context_is_not_used() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    sample(&a)?;
    sample(&b)?;
    write(&b, "a.txt", b"ALPHA\n")?;
    std::thread::sleep(SETTLE);
    let cache = dir.path().join("shared-cache");
    cached(&a, &cache)?;
    let warm_a = cached(&a, &cache)?;
    assert_eq!(warm_a.cached_files, warm_a.files);
    let on_b = cached(&b, &cache)?;
    assert_eq!(on_b.cached_files, 0);
    assert_eq!(on_b.digest, digest(&b)?);
    assert_ne!(on_b.digest, warm_a.digest);
    Ok(())
}
