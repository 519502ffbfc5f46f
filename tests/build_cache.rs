//! build_image against the real buildah: hits, what invalidates the key, and
//! that failures, cancellation and concurrency leave nothing behind.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mcpod::image::{BuildSpec, Built, Progress, build_image};
use mcpod::labels::{ServerSpec, Servers};
use tokio_util::sync::CancellationToken;

async fn build(spec: &BuildSpec) -> Built {
    build_image(spec.clone(), quiet(), CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("build of {} failed: {e}", spec.name))
}

fn servers(name: &str, argv: &[&str]) -> Servers {
    let mut s = Servers::new();
    s.insert(name.to_string(), ServerSpec::argv(argv.iter().copied()));
    s
}

#[tokio::test]
async fn second_build_is_a_hit_and_labels_are_stamped() {
    let name = unique("hit");
    let _cleanup = ImageCleanup(name.clone());
    let ctx = context(&[
        (
            "Containerfile",
            "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL io.mcpod.servers='{\"old\":[\"/bin/old\"]}'\n",
        ),
        ("hello.txt", "hello"),
    ]);
    let mut s = build_spec(&name, ctx.path());
    s.servers = servers("hello", &["/bin/hello", "--stdio"]);

    let first = build(&s).await;
    assert!(!first.cache_hit);
    assert_eq!(first.tag, format!("localhost/{name}:{}", &first.key[..16]));
    // The given server is merged over the one the Containerfile's LABEL declares.
    assert_eq!(first.servers.keys().collect::<Vec<_>>(), ["hello", "old"]);
    assert_eq!(first.servers["hello"].command, ["/bin/hello", "--stdio"]);

    let second = build(&s).await;
    assert!(second.cache_hit, "unchanged inputs must hit");
    assert_eq!(
        (second.tag.as_str(), second.image_id.as_str()),
        (first.tag.as_str(), first.image_id.as_str())
    );
    assert_eq!(second.servers, first.servers);

    // What is stamped is what inspect_labels reads back.
    let inspected = mcpod::image::inspect_labels(&first.tag)
        .await
        .expect("inspect");
    assert_eq!(inspected.servers, first.servers);
    assert_eq!(
        inspected.labels.get("io.mcpod.schema").map(String::as_str),
        Some("1")
    );
    // No temporary tag is left.
    assert!(images_named(&format!("{name}:mcpod-tmp")).is_empty());

    // no_cache rebuilds even though the image is there.
    s.no_cache = true;
    let forced = build(&s).await;
    assert!(!forced.cache_hit);
    assert_eq!(forced.tag, first.tag);
}

#[tokio::test]
async fn what_changes_the_key_and_what_does_not() {
    let name = unique("key");
    let _cleanup = ImageCleanup(name.clone());
    let ctx = context(&[
        (
            "Containerfile",
            "FROM scratch\nARG FLAVOUR=plain\nCOPY . /app\n",
        ),
        ("a.txt", "a"),
        ("logs/debug.log", "noise"),
        (".containerignore", "logs/\n"),
    ]);
    let s = build_spec(&name, ctx.path());
    let base = build(&s).await.tag;

    // An ignored file does not change the key.
    write(ctx.path(), "logs/debug.log", "more noise");
    assert_eq!(build(&s).await.tag, base, "an ignored file changed the key");

    // A changed file does.
    write(ctx.path(), "a.txt", "b");
    let changed_file = build(&s).await.tag;
    assert_ne!(changed_file, base);

    // A build arg does.
    let mut with_arg = s.clone();
    with_arg.build_args.insert("FLAVOUR".into(), "spicy".into());
    let changed_arg = build(&with_arg).await.tag;
    assert_ne!(changed_arg, changed_file);

    // A label (the servers to declare) does.
    let mut with_label = s.clone();
    with_label.servers = servers("x", &["/x"]);
    let changed_label = build(&with_label).await.tag;
    assert_ne!(changed_label, changed_file);
    assert_ne!(changed_label, changed_arg);

    // An ignore rule does.
    write(ctx.path(), ".containerignore", "logs/\na.txt\n");
    let changed_ignore = build(&s).await.tag;
    assert_ne!(changed_ignore, changed_file);
}

#[tokio::test]
async fn a_retagged_base_gives_a_new_key() {
    let name = unique("base");
    let _cleanup = ImageCleanup(name.clone());
    let base_ref = format!("localhost/{name}-base:latest");
    let make_base = |content: &'static str| {
        let (base_ref, name) = (base_ref.clone(), name.clone());
        async move {
            let ctx = context(&[
                ("Containerfile", "FROM scratch\nCOPY f /f\n"),
                ("f", content),
            ]);
            let built = build(&build_spec(&format!("{name}-base-src"), ctx.path())).await;
            let status = std::process::Command::new("buildah")
                .args(["tag", &built.image_id, &base_ref])
                .status()
                .expect("buildah tag");
            assert!(status.success());
        }
    };
    make_base("one").await;
    let ctx = context(&[
        ("Containerfile", &format!("FROM {base_ref}\nCOPY g /g\n")),
        ("g", "g"),
    ]);
    let s = build_spec(&name, ctx.path());
    let first = build(&s).await;
    assert!(build(&s).await.cache_hit);

    make_base("two").await;
    let second = build(&s).await;
    assert!(!second.cache_hit, "a retagged base must miss");
    assert_ne!(second.tag, first.tag);
}

#[tokio::test]
async fn a_failing_build_leaves_nothing_behind() {
    let name = unique("fail");
    let _cleanup = ImageCleanup(name.clone());
    let base = busybox_base(&format!("{name}-bb")).await;
    let ctx = context(&[(
        "Containerfile",
        &format!(
            "FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo failing on purpose; exit 7\"]\n"
        ),
    )]);
    let err = build_image(
        build_spec(&name, ctx.path()),
        quiet(),
        CancellationToken::new(),
    )
    .await
    .expect_err("the RUN step fails");
    let msg = err.to_string();
    assert!(
        msg.contains("`buildah ") && msg.contains(" build ") && msg.contains("failing on purpose"),
        "{msg}"
    );
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
    assert_eq!(containers_named(&name), Vec::<String>::new());

    // A missing COPY source fails with buildah's reason and leaves nothing either.
    let ctx = context(&[("Containerfile", "FROM scratch\nCOPY missing.txt /x\n")]);
    let err = build_image(
        build_spec(&name, ctx.path()),
        quiet(),
        CancellationToken::new(),
    )
    .await
    .expect_err("missing COPY source");
    assert!(err.to_string().contains("missing.txt"), "{err}");
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
}

#[tokio::test]
async fn cancelling_a_build_midway_leaves_nothing_behind() {
    let name = unique("cancel");
    let _cleanup = ImageCleanup(name.clone());
    let base = busybox_base(&format!("{name}-bb")).await;
    let ctx = context(&[(
        "Containerfile",
        &format!(
            "FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo started; sleep 60\"]\n"
        ),
    )]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    // Cancel once buildah reports that the RUN step has started.
    let progress: Progress = Arc::new(move |line: String| {
        if line.contains("started") {
            trigger.cancel();
        }
    });
    let started = std::time::Instant::now();
    let err = build_image(build_spec(&name, ctx.path()), progress, cancel)
        .await
        .expect_err("cancelled");
    assert!(err.is_cancelled(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "cancellation did not stop buildah"
    );
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
    assert_eq!(containers_named(&name), Vec::<String>::new());
}

#[tokio::test]
async fn concurrent_builds_of_one_key_run_buildah_once() {
    let name = unique("concurrent");
    let _cleanup = ImageCleanup(name.clone());
    let base = busybox_base(&format!("{name}-bb")).await;
    let ctx = context(&[(
        "Containerfile",
        &format!(
            "FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo building; sleep 2\"]\n"
        ),
    )]);
    let s = build_spec(&name, ctx.path());
    let runs = Arc::new(Mutex::new(0u32));
    let counting = |runs: Arc<Mutex<u32>>| -> Progress {
        Arc::new(move |line: String| {
            if line == "building"
                && let Ok(mut n) = runs.lock()
            {
                *n += 1;
            }
        })
    };
    let (a, b) = tokio::join!(
        build_image(s.clone(), counting(runs.clone()), CancellationToken::new()),
        build_image(s.clone(), counting(runs.clone()), CancellationToken::new()),
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(
        *runs.lock().expect("lock"),
        1,
        "the RUN step ran more than once"
    );
    assert_eq!(a.image_id, b.image_id);
    let (built, waited) = if a.cache_hit { (b, a) } else { (a, b) };
    assert!(!built.cache_hit);
    assert!(waited.cache_hit && waited.waited_for_concurrent_build);
}

/// A Containerfile's own ignore file (`Containerfile.containerignore`)
/// replaces the context's `.containerignore`, in buildah and in the key alike:
/// a file only the context's file excludes is copied and keyed.
#[tokio::test]
async fn the_containerfiles_own_ignore_file_applies() {
    let name = unique("own-ignore");
    let _cleanup = ImageCleanup(name.clone());
    let ctx = context(&[
        ("Containerfile", "FROM scratch\nCOPY . /app\n"),
        ("kept.txt", "1"),
        ("dropped.txt", "1"),
        (".containerignore", "kept.txt\n"),
        ("Containerfile.containerignore", "dropped.txt\n"),
    ]);
    let s = build_spec(&name, ctx.path());
    let base = build(&s).await;

    write(ctx.path(), "dropped.txt", "2");
    assert_eq!(
        build(&s).await.tag,
        base.tag,
        "a file buildah ignores changed the key"
    );
    write(ctx.path(), "kept.txt", "2");
    let changed = build(&s).await;
    assert_ne!(
        changed.tag, base.tag,
        "a file buildah copies did not change the key"
    );

    // What buildah really copied.
    let files = image_files(&changed.tag);
    assert!(files.contains(&"app/kept.txt".to_string()), "{files:?}");
    assert!(!files.contains(&"app/dropped.txt".to_string()), "{files:?}");
}

/// The paths in an image's root filesystem.
fn image_files(image: &str) -> Vec<String> {
    let created = podman_lines(&["create", "--entrypoint", "/none", image]);
    let container = created.last().expect("podman create printed an id").clone();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("podman export {container} | tar -t"))
        .output()
        .expect("podman export");
    podman_lines(&["rm", &container]);
    assert!(out.status.success(), "podman export: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}
