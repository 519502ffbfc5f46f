use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

/// A minimal 64-bit little-endian ELF file: one loaded segment covering the
/// whole file, an interpreter if given, and a dynamic section naming
/// `needed` and `runpath`.
fn tiny_elf(machine: u16, needed: &[&str], runpath: Option<&str>, interp: Option<&str>) -> Vec<u8> {
    let phnum = if interp.is_some() { 3 } else { 2 };
    let mut strtab = vec![0u8];
    let mut offsets = Vec::new();
    for name in needed.iter().chain(runpath.iter()) {
        offsets.push(strtab.len() as u64);
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
    }
    let interp_bytes = interp
        .map(|i| [i.as_bytes(), b"\0"].concat())
        .unwrap_or_default();
    let ph_at = 64u64;
    let interp_at = ph_at + 56 * phnum;
    let str_at = interp_at + interp_bytes.len() as u64;
    let dyn_at = str_at + strtab.len() as u64;
    let mut dynamic = Vec::new();
    let mut entry = |tag: u64, value: u64| {
        dynamic.extend_from_slice(&tag.to_le_bytes());
        dynamic.extend_from_slice(&value.to_le_bytes());
    };
    for at in &offsets[..needed.len()] {
        entry(1, *at);
    }
    if runpath.is_some() {
        entry(29, offsets[needed.len()]);
    }
    entry(5, str_at);
    entry(10, strtab.len() as u64);
    entry(0, 0);
    let total = dyn_at + dynamic.len() as u64;
    let mut out = vec![0u8; 64];
    out[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    out[16..18].copy_from_slice(&3u16.to_le_bytes());
    out[18..20].copy_from_slice(&machine.to_le_bytes());
    out[32..40].copy_from_slice(&ph_at.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut ph = |kind: u32, offset: u64, size: u64| {
        let mut h = vec![0u8; 56];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&offset.to_le_bytes());
        h[16..24].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..48].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&h);
    };
    ph(1, 0, total);
    if interp.is_some() {
        ph(3, interp_at, interp_bytes.len() as u64);
    }
    ph(2, dyn_at, dynamic.len() as u64);
    out.extend_from_slice(&interp_bytes);
    out.extend_from_slice(&strtab);
    out.extend_from_slice(&dynamic);
    out
}

fn host() -> u16 {
    elf::host_machine().expect("a supported host")
}

fn put(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn base() -> HashSet<String> {
    [
        "libc.so.6",
        "libm.so.6",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

#[test]
fn the_closure_is_what_neither_the_base_nor_the_package_carries() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let prog = tiny_elf(
        host(),
        &[
            "libc.so.6",
            "libfoo.so.1",
            "libcarried.so.1",
            "libviaorigin.so.3",
            "libbar.so.2",
        ],
        Some("/usr/local/lib:$ORIGIN/../lib"),
        Some(LOADER),
    );
    put(root, "app/bin/prog", &prog, 0o755);
    put(
        root,
        "app/bin/libcarried.so.1",
        &tiny_elf(host(), &["libm.so.6"], None, None),
        0o644,
    );
    put(
        root,
        "app/lib/libviaorigin.so.3.0.1",
        &tiny_elf(host(), &[], None, None),
        0o644,
    );
    symlink(
        "libviaorigin.so.3.0.1",
        root.join("app/lib/libviaorigin.so.3"),
    )
    .unwrap();
    // Another platform's program: never run here, its needs are not ours.
    put(
        root,
        "app/arm/prog",
        &tiny_elf(1234, &["libzzz.so.1"], None, None),
        0o755,
    );
    put(root, "app/readme.md", b"# not a program", 0o644);
    let scan = scan(root, &base(), &LIMITS);
    assert_eq!(scan.elves, 4, "{scan:?}");
    assert!(scan.warnings.is_empty(), "{scan:?}");
    assert_eq!(
        scan.missing,
        BTreeMap::from([
            ("libbar.so.2".to_string(), "app/bin/prog".to_string()),
            ("libfoo.so.1".to_string(), "app/bin/prog".to_string()),
        ])
    );
    assert!(scan.dotnet.is_empty());
}

#[test]
fn hostile_library_names_are_never_looked_for() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    put(
        root,
        "a/up",
        &tiny_elf(host(), &["../../etc/passwd"], None, None),
        0o755,
    );
    put(
        root,
        "a/abs",
        &tiny_elf(host(), &["/abs/path.so"], None, None),
        0o755,
    );
    put(
        root,
        "a/odd",
        &tiny_elf(host(), &["libok.so.1", "lib x\n.so"], None, None),
        0o755,
    );
    put(
        root,
        "a/dots",
        &tiny_elf(host(), &[".."], None, None),
        0o755,
    );
    let scan = scan(root, &base(), &LIMITS);
    assert_eq!(
        scan.missing.keys().collect::<Vec<_>>(),
        ["libok.so.1"],
        "{scan:?}"
    );
    let text = scan.warnings.join("\n");
    for file in ["a/up", "a/abs", "a/odd", "a/dots"] {
        assert!(text.contains(file), "{text}");
    }
    assert!(text.contains("`../../etc/passwd`"), "{text}");
    assert!(text.contains("`/abs/path.so`"), "{text}");
    // Every warning is one line.
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn a_run_path_leaving_the_tree_or_not_relative_to_the_program_is_not_searched() {
    assert_eq!(
        origin_dir(Path::new("a/b"), "$ORIGIN/../lib"),
        Some(PathBuf::from("a/lib"))
    );
    assert_eq!(
        origin_dir(Path::new("a/b"), "${ORIGIN}"),
        Some(PathBuf::from("a/b"))
    );
    assert_eq!(origin_dir(Path::new("a/b"), "$ORIGIN/../../.."), None);
    assert_eq!(origin_dir(Path::new("a/b"), "/usr/lib"), None);
    assert_eq!(origin_dir(Path::new("a/b"), "lib"), None);
    // A library the run path would find outside the tree is still missing.
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    put(
        root,
        "p/prog",
        &tiny_elf(host(), &["libz.so.1"], Some("$ORIGIN/../../x"), None),
        0o755,
    );
    put(root, "x/libz.so.1", b"", 0o644);
    let scan = scan(&root.join("p"), &base(), &LIMITS);
    assert_eq!(scan.missing.keys().collect::<Vec<_>>(), ["libz.so.1"]);
}

#[test]
fn links_out_of_the_tree_are_not_followed() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    fs::create_dir(root.join("app")).unwrap();
    // A directory of the host's and a host program, linked into the tree.
    symlink("/usr", root.join("app/usr")).unwrap();
    symlink(fs::canonicalize("/bin/sh").unwrap(), root.join("app/sh")).unwrap();
    symlink("/bin/sh", root.join("app/libsh.so")).unwrap();
    let scan = scan(root, &base(), &LIMITS);
    assert_eq!(scan.elves, 0, "{scan:?}");
    assert!(scan.missing.is_empty(), "{scan:?}");
}

#[test]
fn many_tiny_files_and_a_huge_sparse_one_are_bounded() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    for d in 0..100 {
        let dir = root.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..1000 {
            put(&dir, &format!("f{f}"), b"#!", 0o755);
        }
    }
    // 2 GB, an ELF file's first bytes, nothing written after them.
    let huge = root.join("huge");
    fs::write(&huge, tiny_elf(host(), &["libhuge.so.1"], None, None)).unwrap();
    fs::set_permissions(&huge, fs::Permissions::from_mode(0o755)).unwrap();
    fs::File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let all = scan(root, &base(), &LIMITS);
    assert_eq!(all.elves, 0, "{all:?}");
    assert!(all.missing.is_empty(), "{all:?}");
    assert_eq!(all.warnings.len(), 1, "{all:?}");
    assert!(all.warnings[0].contains("1 files over 1073 MB"), "{all:?}");
    assert!(all.warnings[0].contains("huge"), "{all:?}");

    let small = Limits {
        entries: 5_000,
        ..LIMITS
    };
    let cut = scan(root, &base(), &small);
    assert!(
        cut.warnings
            .iter()
            .any(|w| w.contains("only the first 5000 files")),
        "{cut:?}"
    );

    let few = Limits { elves: 1, ..LIMITS };
    let elves = tempfile::tempdir().unwrap();
    for i in 0..3 {
        put(
            elves.path(),
            &format!("p{i}"),
            &tiny_elf(host(), &["libq.so.1"], None, None),
            0o755,
        );
    }
    let cut = scan(elves.path(), &base(), &few);
    assert_eq!(cut.elves, 1);
    assert!(
        cut.warnings
            .iter()
            .any(|w| w.contains("only the first 1 ELF files")),
        "{cut:?}"
    );
}

#[test]
fn a_dotnet_single_file_program_is_known_by_its_marker() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let mut dotnet = tiny_elf(host(), &["libc.so.6"], None, Some(LOADER));
    // The marker across the boundary of the reads (1 MiB).
    dotnet.resize((1 << 20) - 5, 0);
    dotnet.extend_from_slice(DOTNET_MARKER);
    put(root, "dist/azmcp", &dotnet, 0o755);
    // A library carrying the name is not a program.
    let mut lib = tiny_elf(host(), &[], None, None);
    lib.extend_from_slice(DOTNET_MARKER);
    put(root, "dist/libx.so", &lib, 0o644);
    put(
        root,
        "dist/plain",
        &tiny_elf(host(), &[], None, Some(LOADER)),
        0o755,
    );
    let scan = scan(root, &base(), &LIMITS);
    assert_eq!(scan.dotnet, ["dist/azmcp"], "{scan:?}");
    // What it loads without naming it.
    assert_eq!(
        scan.missing.keys().collect::<Vec<_>>(),
        ["libcrypto.so.3", "libssl.so.3"],
        "{scan:?}"
    );
}

#[test]
fn the_loader_of_another_c_library_is_a_warning() {
    let tree = tempfile::tempdir().unwrap();
    put(
        tree.path(),
        "musl",
        &tiny_elf(
            host(),
            &["libc.musl-x86_64.so.1"],
            None,
            Some("/lib/ld-musl-x86_64.so.1"),
        ),
        0o755,
    );
    let scan = scan(tree.path(), &base(), &LIMITS);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("ld-musl") && w.contains("musl")),
        "{scan:?}"
    );
}
