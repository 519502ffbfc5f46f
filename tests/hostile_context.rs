//! A hostile build context against the real buildah: special files, a writer
//! that swaps files while buildah reads them, and Containerfiles or ignore
//! files that are symlinks out of the context. Each test is one finding of the
//! security review; none may leave an image or a working container behind.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mcpod::Error;
use mcpod::cache::hash_context;
use mcpod::image::{BuildSpec, Built, Progress, build_image};
use mcpod::labels::Servers;
use mcpod::server::tools::BuildImageInput;
use mcpod::workspace::Workspace;
use tokio_util::sync::CancellationToken;

/// A progress sink that records whether buildah was started.
fn watching(ran: Arc<AtomicBool>) -> Progress {
    Arc::new(move |line: String| {
        if line.starts_with("building ") || line.starts_with("STEP") {
            ran.store(true, Ordering::SeqCst);
        }
    })
}

/// build_image with a deadline: a special file must never make it hang.
async fn try_build(spec: &BuildSpec, progress: Progress) -> Result<Built, Error> {
    match tokio::time::timeout(
        Duration::from_secs(120),
        build_image(spec.clone(), progress, CancellationToken::new()),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => panic!("the build of {} hung", spec.name),
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

fn mkfifo(path: &Path) {
    run("mkfifo", &[path.to_str().expect("utf-8 path")]);
}

/// A character device like /dev/zero (an endless read): major 1, minor 5.
fn mknod_zero(path: &Path) {
    run(
        "mknod",
        &[path.to_str().expect("utf-8 path"), "c", "1", "5"],
    );
}

/// The content of `path` inside `image`.
fn cat_in_image(image: &str, path: &str) -> String {
    let out = Command::new("podman")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/busybox",
            image,
            "cat",
            path,
        ])
        .output()
        .expect("podman run");
    assert!(out.status.success(), "podman run {image}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A FIFO or a device node buildah would copy into the image as such: the key
/// cannot cover it, so the build is refused at once, naming the path, and the
/// walk never opens it (a FIFO would block it, /dev/zero never ends).
#[tokio::test]
async fn fifos_and_devices_are_refused_naming_the_path() {
    let name = unique("special");
    let _cleanup = ImageCleanup(name.clone());
    for (what, make) in [
        ("fifo", mkfifo as fn(&Path)),
        ("device", mknod_zero as fn(&Path)),
    ] {
        let ctx = context(&[
            ("Containerfile", "FROM scratch\nCOPY . /ctx\n"),
            ("sub/a.txt", "a"),
        ]);
        make(&ctx.path().join("sub/special"));

        let started = Instant::now();
        let err = hash_context(ctx.path(), None, None).expect_err(what);
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: slow");
        let msg = err.to_string();
        assert!(
            msg.contains("`sub/special`") && msg.contains(".containerignore"),
            "{what}: {msg}"
        );

        let ran = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let err = try_build(&build_spec(&name, ctx.path()), watching(ran.clone()))
            .await
            .expect_err(what);
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: slow");
        assert!(err.to_string().contains("`sub/special`"), "{what}: {err}");
        assert!(!ran.load(Ordering::SeqCst), "{what}: buildah ran");
    }
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
}

/// A special file the ignore rules exclude is not part of the context: fine.
/// A socket is never copied by buildah (it skips it in `COPY .`): left out of
/// the key too, so adding one does not change the tag.
#[tokio::test]
async fn excluded_special_files_and_sockets_build() {
    let name = unique("special-ok");
    let _cleanup = ImageCleanup(name.clone());
    let ctx = context(&[
        ("Containerfile", "FROM scratch\nCOPY . /ctx\n"),
        (".containerignore", "pipe\nlogs/\n"),
        ("a.txt", "a"),
    ]);
    let plain = try_build(&build_spec(&name, ctx.path()), quiet())
        .await
        .expect("plain build");
    mkfifo(&ctx.path().join("pipe"));
    std::fs::create_dir(ctx.path().join("logs")).expect("mkdir");
    mkfifo(&ctx.path().join("logs/pipe"));
    let _socket =
        std::os::unix::net::UnixListener::bind(ctx.path().join("agent.sock")).expect("bind");
    let with_specials = try_build(&build_spec(&name, ctx.path()), quiet())
        .await
        .expect("excluded special files and a socket build");
    assert_eq!(with_specials.tag, plain.tag);
    assert!(with_specials.cache_hit);
}

/// The finding: a writer swapping one file by rename while buildah reads the
/// context got content B stored under the key of content A. Now every build
/// that succeeds holds what its key says, and the others fail saying the
/// context changed.
#[tokio::test]
async fn a_file_swapped_during_builds_is_never_stored_under_the_other_key() {
    let name = unique("swap");
    let _cleanup = ImageCleanup(name.clone());
    let base = busybox_base(&format!("{name}-bb")).await;
    let ctx = context(&[
        (
            "Containerfile",
            &format!("FROM {base}\nCOPY data.txt /data.txt\n"),
        ),
        ("data.txt", "AAAA\n"),
    ]);
    // The versions are written outside the context and renamed over the file.
    let stage = tempfile::tempdir().expect("tempdir");
    let contents = ["AAAA\n", "BBBB\n"];
    let s = build_spec(&name, ctx.path());

    // The key each content has when nothing writes to the context.
    let mut stable = BTreeMap::new();
    for content in contents {
        write(ctx.path(), "data.txt", content);
        let built = try_build(&s, quiet()).await.expect("stable build");
        assert_eq!(cat_in_image(&built.tag, "/data.txt"), content);
        stable.insert(built.key.clone(), content);
    }

    let stop = Arc::new(AtomicBool::new(false));
    // The writer stops when the test ends, however it ends.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _stop = Stop(stop.clone());
    let writer = {
        let (stop, target, stage) = (
            stop.clone(),
            ctx.path().join("data.txt"),
            stage.path().to_path_buf(),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let tmp = stage.join(format!("v{n}"));
                let swapped = std::fs::write(&tmp, contents[(n % 2) as usize])
                    .and_then(|()| std::fs::rename(&tmp, &target));
                if swapped.is_err() {
                    break;
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(13 + (n * 7919) % 40));
            }
            n
        })
    };

    let (mut ok, mut refused) = (0, 0);
    for _ in 0..8 {
        let mut racy = s.clone();
        racy.no_cache = true;
        match try_build(&racy, quiet()).await {
            Ok(built) => {
                ok += 1;
                let inside = cat_in_image(&built.tag, "/data.txt");
                let keyed = stable.get(&built.key).copied();
                assert_eq!(
                    keyed,
                    Some(inside.as_str()),
                    "image {} holds {inside:?} under the key of {keyed:?}",
                    built.tag
                );
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                assert!(msg.contains("changed"), "{msg}");
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let swaps = writer.join().expect("writer");
    eprintln!("{swaps} swaps: {ok} builds stored, {refused} refused");

    // Once the context is stable again, a build is a hit with the right content.
    write(ctx.path(), "data.txt", "AAAA\n");
    let again = try_build(&s, quiet()).await.expect("stable again");
    assert_eq!(stable.get(&again.key).copied(), Some("AAAA\n"));
    assert_eq!(cat_in_image(&again.tag, "/data.txt"), "AAAA\n");
    assert!(images_named(&format!("{name}:mcpod-tmp")).is_empty());
}

/// The same finding aimed at the window while buildah runs, and undone before
/// it ends: a directory is swapped for another while a RUN step sleeps
/// before the COPY, and swapped back during the next step. The context then
/// looks as it was, but buildah copied the other directory.
#[tokio::test]
async fn a_directory_swapped_and_back_while_buildah_runs_fails_the_build() {
    let name = unique("swap-back");
    let _cleanup = ImageCleanup(name.clone());
    let base = busybox_base(&format!("{name}-bb")).await;
    // A nonce in the RUN steps: buildah's layer cache must not skip them.
    let sleep =
        |n: u32| format!("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {name}-{n}; sleep 1\"]");
    let ctx = context(&[
        (
            "Containerfile",
            &format!("FROM {base}\n{}\nCOPY sub /sub\n{}\n", sleep(1), sleep(2)),
        ),
        ("sub/data.txt", "AAAA\n"),
    ]);
    let other = tempfile::tempdir().expect("tempdir");
    write(other.path(), "sub/data.txt", "BBBB\n");
    let (sub, away, theirs) = (
        ctx.path().join("sub"),
        other.path().join("away"),
        other.path().join("sub"),
    );
    // Once each way, even if buildah prints a step twice (it is run again
    // after a storage race with a concurrent removal).
    let (swapped, restored) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let progress: Progress = Arc::new(move |line: String| {
        let swap = |from: &Path, to: &Path| {
            std::fs::rename(from, to).unwrap_or_else(|e| panic!("rename {from:?}: {e}"))
        };
        if line.starts_with("STEP 2/4") && !swapped.swap(true, Ordering::SeqCst) {
            swap(&sub, &away);
            swap(&theirs, &sub);
        } else if line.starts_with("STEP 4/4")
            && swapped.load(Ordering::SeqCst)
            && !restored.swap(true, Ordering::SeqCst)
        {
            swap(&sub, &theirs);
            swap(&away, &sub);
        }
    });
    let err = try_build(&build_spec(&name, ctx.path()), progress)
        .await
        .expect_err("the context changed while buildah read it");
    let msg = err.to_string();
    assert!(msg.contains("changed") && msg.contains("`sub`"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("sub/data.txt")).expect("read"),
        "AAAA\n",
        "the swap was undone"
    );
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
}

/// The context's Containerfile as a symlink to a host file: refused, naming
/// the link and its target, and buildah never runs (the target here is a
/// valid Containerfile, so buildah would succeed).
#[tokio::test]
async fn a_containerfile_symlink_out_of_the_context_is_refused() {
    let name = unique("cf-link");
    let _cleanup = ImageCleanup(name.clone());
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("host-file");
    std::fs::write(&target, "FROM scratch\nCOPY a.txt /a.txt\n").expect("write");
    let ctx = context(&[("a.txt", "a")]);
    symlink(&target, ctx.path().join("Containerfile")).expect("symlink");

    let ran = Arc::new(AtomicBool::new(false));
    let err = try_build(&build_spec(&name, ctx.path()), watching(ran.clone()))
        .await
        .expect_err("a Containerfile linked out of the context");
    let msg = err.to_string();
    assert!(
        msg.contains("Containerfile") && msg.contains(&target.display().to_string()),
        "{msg}"
    );
    assert!(!ran.load(Ordering::SeqCst), "buildah ran");
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());

    // Through the workspace (the MCP tool and the CLI): the default
    // Containerfile of a context is resolved like an explicit one.
    let ws_dir = tempfile::tempdir().expect("tempdir");
    let ws_ctx = ws_dir.path().join("ctx");
    std::fs::create_dir(&ws_ctx).expect("mkdir");
    symlink(&target, ws_ctx.join("Containerfile")).expect("symlink");
    let workspace = Workspace::new(ws_dir.path()).expect("workspace");
    let input = BuildImageInput {
        name: format!("localhost/{name}"),
        context: "ctx".into(),
        containerfile: None,
        build_args: BTreeMap::new(),
        servers: Servers::new(),
        no_cache: false,
    };
    let err = input
        .into_spec(&workspace)
        .expect_err("outside the workspace");
    let msg = err.to_string();
    assert!(
        msg.contains("ctx/Containerfile") && msg.contains(&target.display().to_string()),
        "{msg}"
    );

    // A symlink that stays inside the context is fine.
    let inside = context(&[
        ("build/real", "FROM scratch\nCOPY a.txt /a.txt\n"),
        ("a.txt", "a"),
    ]);
    symlink("build/real", inside.path().join("Containerfile")).expect("symlink");
    try_build(&build_spec(&name, inside.path()), quiet())
        .await
        .expect("a Containerfile linked inside the context builds");
}

/// `.containerignore`, `.dockerignore` and `Containerfile.dockerignore` as
/// symlinks to host files: refused, naming the file and its target, before
/// buildah runs. Before, their target's text was taken as the ignore rules.
#[tokio::test]
async fn ignore_file_symlinks_out_of_the_context_are_refused() {
    let name = unique("ignore-link");
    let _cleanup = ImageCleanup(name.clone());
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("host-rules");
    std::fs::write(&target, "secret.txt\n").expect("write");
    for ignore in [
        ".containerignore",
        ".dockerignore",
        "Containerfile.dockerignore",
    ] {
        let ctx = context(&[
            ("Containerfile", "FROM scratch\nCOPY . /ctx\n"),
            ("a.txt", "a"),
        ]);
        symlink(&target, ctx.path().join(ignore)).expect("symlink");
        let err =
            hash_context(ctx.path(), Some(Path::new("Containerfile")), None).expect_err(ignore);
        let msg = err.to_string();
        assert!(
            msg.contains(ignore) && msg.contains(&target.display().to_string()),
            "{ignore}: {msg}"
        );
        let ran = Arc::new(AtomicBool::new(false));
        let err = try_build(&build_spec(&name, ctx.path()), watching(ran.clone()))
            .await
            .expect_err(ignore);
        assert!(err.to_string().contains(ignore), "{ignore}: {err}");
        assert!(!ran.load(Ordering::SeqCst), "{ignore}: buildah ran");
    }
    // One that stays inside the context applies.
    let ctx = context(&[
        ("Containerfile", "FROM scratch\nCOPY . /ctx\n"),
        ("rules/ignore", "secret.txt\n"),
        ("secret.txt", "s"),
    ]);
    symlink("rules/ignore", ctx.path().join(".containerignore")).expect("symlink");
    let digest = hash_context(ctx.path(), None, None).expect("inside");
    assert_eq!(
        digest.ignore_file,
        Some(ctx.path().join(".containerignore"))
    );
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
}

/// The Containerfile and the ignore files are read with a bound: a larger
/// one is refused with its size and the limit.
#[tokio::test]
async fn oversized_containerfile_and_ignore_file_are_refused() {
    let name = unique("big");
    let _cleanup = ImageCleanup(name.clone());
    let big = format!("FROM scratch\n{}", "# padding\n".repeat(120_000));
    let ctx = context(&[("Containerfile", &big), ("a.txt", "a")]);
    let err = try_build(&build_spec(&name, ctx.path()), quiet())
        .await
        .expect_err("a 1.2 MB Containerfile");
    let msg = err.to_string();
    assert!(
        msg.contains("Containerfile") && msg.contains("1048576"),
        "{msg}"
    );

    let ctx = context(&[
        ("Containerfile", "FROM scratch\nCOPY . /ctx\n"),
        (".dockerignore", &"x\n".repeat(600_000)),
    ]);
    let err = hash_context(ctx.path(), None, None).expect_err("a 1.2 MB ignore file");
    let msg = err.to_string();
    assert!(
        msg.contains(".dockerignore") && msg.contains("1048576"),
        "{msg}"
    );
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
}
