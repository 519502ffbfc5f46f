//! The cache hit against a store of its own (see `common::store`, vfs): it
//! reads the store's image index, not buildah's listing of every image, and a
//! store that changes under it (an image removed or its tag moved between the
//! lookup and the use, a corrupt index) gives a miss and a build, never an
//! image other than the one mcpod built for the key.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::store::TempStore;
use common::{context, quiet};
use mcpod::image::probe::Probe;
use mcpod::image::{BuildSpec, Built, build_image};
use mcpod::labels::{ServerSpec, Servers};
use tokio_util::sync::CancellationToken;

/// The store and the state directory are this process's environment: one
/// test at a time per process (nextest gives each test a process anyway).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Scene {
    store: TempStore,
    runtime: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
    _one: MutexGuard<'static, ()>,
}

fn scene() -> Scene {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let store = TempStore::new("vfs");
    let state = tempfile::tempdir_in("/var/tmp").expect("state dir");
    // SAFETY: set before this test starts any thread that reads the
    // environment, and no other test of this process runs meanwhile (the lock).
    unsafe {
        std::env::set_var("CONTAINERS_STORAGE_CONF", store.conf());
        std::env::set_var("MCPOD_STATE_DIR", state.path());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    Scene {
        store,
        runtime,
        _state: state,
        _one: one,
    }
}

impl Scene {
    /// A spec building `FROM scratch` with one file, declaring `server`.
    fn spec(&self, name: &str, file: &str, server: &str) -> (BuildSpec, tempfile::TempDir) {
        let ctx = context(&[
            ("Containerfile", "FROM scratch\nCOPY f.txt /f.txt\n"),
            ("f.txt", file),
        ]);
        let mut servers = Servers::new();
        servers.insert(
            server.to_string(),
            ServerSpec::argv([format!("/bin/{server}")]),
        );
        let mut spec = common::build_spec(name, ctx.path());
        spec.servers = servers;
        (spec, ctx)
    }

    fn build(&self, spec: &BuildSpec) -> Built {
        self.runtime
            .block_on(build_image(spec.clone(), quiet(), CancellationToken::new()))
            .unwrap_or_else(|e| panic!("build of {} failed: {e}", spec.name))
    }

    fn probe(&self) -> Probe {
        self.runtime
            .block_on(Probe::take(&[]))
            .expect("the probe answers")
    }

    fn exists(&self, reference: &str) -> bool {
        self.store
            .command("buildah")
            .args(["inspect", "--type", "image", reference])
            .output()
            .expect("buildah")
            .status
            .success()
    }
}

#[test]
fn a_hit_reads_the_index_not_the_listing_and_finds_the_right_image() {
    let s = scene();
    let (a, _ctx_a) = s.spec("hit-a", "a", "a");
    let (b, _ctx_b) = s.spec("hit-b", "b", "b");
    let first = s.build(&a);
    assert!(!first.cache_hit);
    let other = s.build(&b);
    // Names like the key's tag, on another image.
    let key16 = &first.key[..16];
    for similar in [
        format!("localhost/hit-a:{key16}-old"),
        format!("localhost/hit-a-other:{key16}"),
        format!("localhost/hit:{key16}"),
    ] {
        s.store.run("buildah", &["tag", &other.image_id, &similar]);
    }
    // The other image's top layer is gone from the store: buildah's listing
    // of every image now fails, while the key's image is whole.
    s.store.edit_index(|images| {
        for image in images.iter_mut() {
            if image["id"] == other.image_id.as_str() {
                image["layer"] = "0".repeat(64).into();
            }
        }
    });
    let listing = s
        .store
        .command("buildah")
        .args(["images", "--json", "--no-trunc"])
        .output()
        .expect("buildah");
    assert!(
        !listing.status.success()
            && String::from_utf8_lossy(&listing.stderr).contains("layer not known"),
        "the listing should fail on the broken image: {}",
        String::from_utf8_lossy(&listing.stderr)
    );

    let hit = s.build(&a);
    assert!(hit.cache_hit, "unchanged inputs must hit");
    assert_eq!(
        (hit.tag.as_str(), hit.image_id.as_str()),
        (first.tag.as_str(), first.image_id.as_str())
    );
    assert_eq!(hit.servers, first.servers);
}

#[test]
fn an_image_removed_between_lookup_and_use_is_a_miss() {
    let s = scene();
    let (a, _ctx) = s.spec("gone", "a", "a");
    let first = s.build(&a);
    // A hit remembers what it found; the probe below answers from that.
    assert!(s.build(&a).cache_hit);
    let mut probe = s.probe();
    assert!(probe.reads_index(), "the probe reads the index");
    assert!(probe.id_of(&first.tag).is_some());

    s.store.run("buildah", &["rmi", &first.tag]);
    let hit = s
        .runtime
        .block_on(probe.hit(&first.key, &first.tag))
        .expect("the hit answers");
    assert!(hit.is_none(), "a removed image is no hit: {hit:?}");

    let again = s.build(&a);
    assert!(!again.cache_hit, "the key is built again");
    assert!(s.exists(&again.image_id) && s.exists(&again.tag));
}

#[test]
fn a_tag_moved_to_another_image_is_built_again_never_answered() {
    let s = scene();
    let (a, _ctx_a) = s.spec("moved-a", "a", "a");
    let (b, _ctx_b) = s.spec("moved-b", "b", "b");
    let first = s.build(&a);
    let other = s.build(&b);
    // A hit remembers what it found, for this version of the index.
    assert!(s.build(&a).cache_hit);

    // Moved between the lookup and the use: the looked-up image is gone and
    // the tag names another.
    let mut probe = s.probe();
    s.store.run("buildah", &["rmi", &first.tag]);
    s.store
        .run("buildah", &["tag", &other.image_id, &first.tag]);
    let hit = s
        .runtime
        .block_on(probe.hit(&first.key, &first.tag))
        .expect("the hit answers");
    assert!(hit.is_none(), "a moved tag is no hit: {hit:?}");

    // Moved before the lookup: the tag names an image mcpod did not build
    // for this key (its record names another).
    let again = s.build(&a);
    assert!(
        !again.cache_hit && again.image_id != other.image_id,
        "the key must be built again, not answered with the image the tag was moved to: {again:?}"
    );
    assert_eq!(again.servers, first.servers);
    assert!(s.exists(&other.image_id), "the other image is left alone");
    // And the rebuilt key hits again.
    let hit = s.build(&a);
    assert!(hit.cache_hit && hit.image_id == again.image_id, "{hit:?}");
}

#[test]
fn a_corrupt_index_falls_back_to_buildah_without_a_panic() {
    let s = scene();
    let (a, _ctx) = s.spec("corrupt", "a", "a");
    let first = s.build(&a);
    std::fs::write(s.store.images_json(), b"{\"not\": [an index").expect("corrupt");
    assert!(
        !s.probe().reads_index(),
        "an unreadable index is not trusted"
    );
    // buildah reads a corrupt index as an empty store: a miss, built again.
    let again = s.build(&a);
    assert!(!again.cache_hit, "{again:?}");
    assert_eq!(
        (again.tag.as_str(), again.servers.clone()),
        (first.tag.as_str(), first.servers)
    );
}
