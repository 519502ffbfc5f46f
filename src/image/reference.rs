//! Image names and references: validating the names an agent passes, and
//! finding a reference among the names local storage uses.

use crate::engine::buildah::LocalImage;
use crate::engine::storage::StoredImage;
use crate::{Error, Result};

/// Check an image name (repository, no tag) such as `localhost/tools` or `tools`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::invalid(
            "image name",
            name,
            reason,
            "use lowercase letters, digits, '.', '_', '-' and '/' (e.g. `localhost/my-tools`), without a tag; mcpod sets the tag",
        ))
    };
    if name.is_empty() || name.len() > 200 {
        return bad("it must be 1 to 200 characters");
    }
    let path = match name.split_once('/') {
        // A first component with '.' or ':' is a registry host[:port].
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
            let valid_host = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
            if !valid_host {
                return bad("the registry host has characters that are not allowed");
            }
            rest
        }
        _ => name,
    };
    if path.contains(':') || path.contains('@') {
        return bad("it has a tag or digest");
    }
    for component in path.split('/') {
        let ok = !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && component.as_bytes()[0].is_ascii_alphanumeric()
            && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return bad(
                "a path component is empty, has uppercase or other characters, or starts or ends with a separator",
            );
        }
    }
    Ok(())
}

/// Check a reference an agent passes (name[:tag][@digest] or an image ID).
pub fn validate_reference(reference: &str) -> Result<()> {
    let ok = !reference.is_empty()
        && reference.len() <= 512
        && !reference.starts_with('-')
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "image reference",
            reference,
            "it is empty, too long, starts with '-', or has characters outside [A-Za-z0-9._-/:@]",
            "pass a reference such as `localhost/my-tools:0123abcd` or an image ID",
        ))
    }
}

/// The name local storage gives `name` (a bare name lives under `localhost/`).
pub fn qualified(name: &str) -> String {
    match name.split_once('/') {
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => name.to_string(),
        _ => format!("localhost/{name}"),
    }
}

/// An image as a lookup sees it: its full ID (hex, no `sha256:`) and names.
pub trait Named {
    fn id(&self) -> &str;
    fn names(&self) -> &[String];
}

impl Named for LocalImage {
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        LocalImage::names(self)
    }
}

impl Named for StoredImage {
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        StoredImage::names(self)
    }
}

/// Find `reference` among local images the way podman resolves it locally:
/// by ID prefix, by exact name, or by a short name qualified with `localhost/`
/// or `docker.io/[library/]`, with `:latest` when no tag is given.
pub fn find<'a, I: Named>(images: &'a [I], reference: &str) -> Option<&'a I> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() >= 12
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && let Some(image) = images.iter().find(|i| i.id().starts_with(hex))
    {
        return Some(image);
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let tagged = if last.contains(':') || reference.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    };
    let mut candidates = vec![tagged.clone()];
    let has_host = matches!(reference.split_once('/'), Some((h, _)) if h.contains(['.', ':']) || h == "localhost");
    if !has_host {
        candidates.push(format!("localhost/{tagged}"));
        if !tagged.contains('/') {
            candidates.push(format!("docker.io/library/{tagged}"));
        }
        candidates.push(format!("docker.io/{tagged}"));
    }
    candidates
        .iter()
        .find_map(|c| images.iter().find(|i| i.names().iter().any(|n| n == c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, names: &[&str]) -> LocalImage {
        LocalImage {
            id: id.to_string(),
            names: Some(names.iter().map(|s| s.to_string()).collect()),
            created: 0,
        }
    }

    #[test]
    fn names() {
        for ok in [
            "tools",
            "localhost/tools",
            "registry.example.com:5000/a/b-c",
            "a.b_c",
        ] {
            validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "Tools",
            "tools:1",
            "-x",
            "a//b",
            "a/b@sha256:00",
            "x_",
            "a b",
        ] {
            let err = validate_name(bad).expect_err(bad).to_string();
            assert!(err.contains("image name") && err.contains("Fix:"), "{err}");
        }
    }

    #[test]
    fn finds_local_images_by_short_name_and_id() {
        let images = [
            image("aaaabbbbccccdddd", &["localhost/base:latest"]),
            image(
                "1111222233334444",
                &["docker.io/library/alpine:3", "localhost/x:1"],
            ),
        ];
        assert_eq!(
            find(&images, "base").map(|i| i.id.as_str()),
            Some("aaaabbbbccccdddd")
        );
        assert_eq!(
            find(&images, "localhost/base:latest").map(|i| i.id.as_str()),
            Some("aaaabbbbccccdddd")
        );
        assert_eq!(
            find(&images, "alpine:3").map(|i| i.id.as_str()),
            Some("1111222233334444")
        );
        assert_eq!(
            find(&images, "111122223333").map(|i| i.id.as_str()),
            Some("1111222233334444")
        );
        assert!(find(&images, "alpine").is_none());
        assert!(find(&images, "base:2").is_none());
        assert_eq!(qualified("x"), "localhost/x");
        assert_eq!(qualified("quay.io/x"), "quay.io/x");
    }
}
