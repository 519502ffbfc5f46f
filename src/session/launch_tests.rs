//! The user check of an id-mapped writable mount.

use super::*;

fn image(user: Option<&str>) -> Resolved {
    Resolved {
        // No such image: a check that asked podman would fail otherwise.
        id: "0000000000000000000000000000000000000000000000000000000000000000".into(),
        servers: Default::default(),
        requests: None,
        warnings: Vec::new(),
        user: user.map(str::to_string),
    }
}

#[test]
fn only_root_passes_the_user_check() {
    for root in ["", "0", "root", "0:0", "root:root"] {
        assert!(root_user("img", root).is_ok(), "{root:?} is root");
    }
    for other in [
        "1000",
        "nobody",
        "65534:65534",
        "0:1000x",
        "app",
        "root:wheel",
    ] {
        let refused = root_user("img", other).expect_err(other).to_string();
        assert!(
            refused.contains(&format!("runs its servers as user `{other}`")),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn the_user_the_inspect_read_is_checked_without_another_inspect() {
    // The image ID names nothing in any store: had the check started a
    // second `podman image inspect`, it would fail another way (not found,
    // or podman missing), not with the refusal below.
    let refused = runs_as_root(&image(Some("1000")))
        .await
        .expect_err("a non-root image is refused")
        .to_string();
    assert!(
        refused.contains("runs its servers as user `1000`"),
        "{refused}"
    );
    assert!(refused.contains("mount it read-only"), "{refused}");
    runs_as_root(&image(Some("")))
        .await
        .expect("an image without USER runs as root");
    runs_as_root(&image(Some("root")))
        .await
        .expect("root by name");
}
