//! Python from a Debian release's own packages (bookworm's 3.11, trixie's
//! 3.13): the interpreter, its standard library and the libraries they load,
//! downloaded with their dependency closure and unpacked, never installed or
//! run on the host.

use super::super::rootfs::Rootfs;
use super::Staged;
use crate::image::Progress;
use crate::{Error, Result};

/// The Debian releases whose Python a base can be made from: name, minor,
/// and the version their archive carries (what `Requires-Python` is checked
/// against before anything is fetched).
pub const RELEASES: &[(&str, &str, &str)] =
    &[("bookworm", "3.11", "3.11.2"), ("trixie", "3.13", "3.13.5")];

pub fn suite(name: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.0 == name).map(|r| r.0)
}

pub fn minor_of(suite: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.0 == suite).map(|r| r.1)
}

/// The release whose Python is `minor`.
pub fn suite_with(minor: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.1 == minor).map(|r| r.0)
}

pub async fn stage(suite: &'static str, _rootfs: Rootfs, _progress: &Progress) -> Result<Staged> {
    Err(Error::invalid(
        "runtime",
        format!("python@{}", minor_of(suite).unwrap_or("?")),
        format!("making a Python base from Debian {suite}'s packages is not built yet"),
        "use the host's Python, or name a base with --base python=IMAGE",
    ))
}
