//! Resolving as of a time (`resolve_as_of`): a package's dependencies as they
//! stood when it was published, or at the end of a given day, so that an
//! older server is not resolved against today's incompatible releases.
//!
//! npm takes the cutoff as `before` (in the work directory's `.npmrc`, which
//! npm reads as the project's config); pip as `--uploaded-prior-to`, which
//! pip 26 has and the host's pip may not: a pinned pip wheel, fetched from
//! the index with its sha256 checked, runs from the wheel instead.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::reference::{Ecosystem, PackageRef};
use crate::engine::process::Invocation;
use crate::{Error, Result};

/// The pip that knows `--uploaded-prior-to`, and its wheel's sha256 on PyPI.
pub const PIP_WHEEL: &str = "pip-26.0.1-py3-none-any.whl";
const PIP_REQUIREMENT: &str =
    "pip==26.0.1 --hash=sha256:bdb1b08f4274833d62c1aa29e20907365a2ceb950410df15fc9521bad440122b\n";
/// The earliest day taken: before it neither registry had anything to resolve.
const EARLIEST: (i64, u32, u32) = (2005, 1, 1);
/// The most of a registry's document on a package that is read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// A request's `resolve_as_of`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// As the dependencies stood when the package's version was published.
    Published,
    /// As they stood at the end of this day (UTC): `(year, month, day)`.
    Day(i64, u32, u32),
}

impl AsOf {
    /// Check `text`: `published`, or a `YYYY-MM-DD` day that is over (before
    /// today, UTC) and not before 2005.
    pub fn parse(text: &str) -> Result<AsOf> {
        let bad = |reason: String| {
            Error::invalid(
                "resolve_as_of",
                super::cut(&text.escape_debug().to_string(), 64),
                reason,
                "give `published` (the package's dependencies as they stood when it was published), or a past day as YYYY-MM-DD, e.g. `2025-05-01`",
            )
        };
        if text == "published" {
            return Ok(AsOf::Published);
        }
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10
            || b[4] != b'-'
            || b[7] != b'-'
            || !digits(0..4)
            || !digits(5..7)
            || !digits(8..10)
        {
            return Err(bad(
                "it is neither `published` nor a day as YYYY-MM-DD".into()
            ));
        }
        let num = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap_or(0);
        let (y, m, d) = (i64::from(num(0..4)), num(5..7), num(8..10));
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return Err(bad("no such day".into()));
        }
        if (y, m, d) < EARLIEST {
            return Err(bad(format!(
                "it is before {:04}-{:02}-{:02}, when there was nothing to resolve",
                EARLIEST.0, EARLIEST.1, EARLIEST.2
            )));
        }
        let today = now_secs().div_euclid(86_400);
        if days_from_civil(y, m, d) >= today {
            return Err(bad(
                "it is today or in the future: the day must be over, so that what it resolves to is fixed".into(),
            ));
        }
        Ok(AsOf::Day(y, m, d))
    }

    /// The form that goes into the request's key.
    pub fn key(&self) -> String {
        match self {
            AsOf::Published => "published".into(),
            AsOf::Day(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
        }
    }

    /// The cutoff, as RFC 3339 UTC seconds: the end of the day, or a second
    /// after the package's version was published (asked of its registry).
    pub async fn cutoff(&self, package: &PackageRef, cancel: CancellationToken) -> Result<String> {
        match self {
            AsOf::Day(y, m, d) => Ok(format_secs((days_from_civil(*y, *m, *d) + 1) * 86_400)),
            AsOf::Published => {
                let Some(version) = package.exact_version() else {
                    return Err(Error::invalid(
                        "resolve_as_of",
                        "published",
                        format!(
                            "`{package}` names no exact version, so there is no one publication time"
                        ),
                        "name an exact version, or give a past day as YYYY-MM-DD",
                    ));
                };
                let published = published(package, version, cancel).await?;
                Ok(format_secs(published + 1))
            }
        }
    }
}

/// The `.npmrc` that makes npm resolve as of `cutoff`.
pub fn npmrc(cutoff: &str) -> String {
    format!("before={cutoff}\n")
}

/// pip's flag for `cutoff`.
pub fn pip_flag(cutoff: &str) -> OsString {
    format!("--uploaded-prior-to={cutoff}").into()
}

/// The pinned pip wheel under `dir` (the state dir's `provision/pip`),
/// fetched once with the host's pip: wheels only, `--require-hashes` against
/// the pinned sha256, into a temporary directory renamed into place.
pub async fn pip_wheel(dir: &Path, cancel: CancellationToken) -> Result<PathBuf> {
    let wheel = dir.join(PIP_WHEEL);
    if wheel.is_file() {
        return Ok(wheel);
    }
    let work = super::TempDir::create(&dir.join(format!("fetch-{}", crate::engine::nonce())))?;
    let requirement = work.path().join("requirements.txt");
    super::write(&requirement, PIP_REQUIREMENT.as_bytes())?;
    crate::engine::runtime::pip(
        vec![
            "download".into(),
            "--quiet".into(),
            "--no-deps".into(),
            "--only-binary=:all:".into(),
            "--require-hashes".into(),
            "--dest".into(),
            work.path().into(),
            "-r".into(),
            requirement.into(),
        ],
        None,
        cancel,
    )
    .await?;
    let fetched = work.path().join(PIP_WHEEL);
    std::fs::rename(&fetched, &wheel).map_err(|e| Error::io("renaming", &fetched, e))?;
    Ok(wheel)
}

/// When `version` of `package` was published, in seconds since the epoch,
/// from its registry's document (PyPI's JSON API: the release's latest
/// upload; npm's packument: its `time` map), fetched by a script of mcpod's
/// own that takes the name on stdin and reads a bounded document.
async fn published(package: &PackageRef, version: &str, cancel: CancellationToken) -> Result<i64> {
    let ask = serde_json::json!({
        "ecosystem": package.ecosystem.as_str(),
        "name": package.normalized_name(),
        "version": version,
        "max": MAX_DOCUMENT_BYTES,
    });
    let invocation = Invocation::new("python3")
        .args(["-I", "-c", PUBLISHED_SCRIPT])
        .stdin(ask.to_string().into_bytes())
        .timeout(Duration::from_secs(120))
        .cancel_on(cancel);
    let display = format!("python3 (when {package} was published)");
    let out = invocation.run().await?;
    let text = out.stdout.trim();
    let registry = match package.ecosystem {
        Ecosystem::Npm => "npm registry",
        Ecosystem::Pypi => "PyPI",
    };
    if let Some(reason) = text.strip_prefix("unknown: ") {
        return Err(Error::invalid(
            "resolve_as_of",
            "published",
            format!(
                "the {registry} does not say when `{package}` was published: {}",
                super::cut(&reason.escape_debug().to_string(), 200)
            ),
            "give a past day as YYYY-MM-DD instead",
        ));
    }
    parse_rfc3339(text).ok_or_else(|| Error::UnexpectedOutput {
        command: display,
        reason: format!(
            "not a time: {}",
            super::cut(&text.escape_debug().to_string(), 80)
        ),
    })
}

const PUBLISHED_SCRIPT: &str = r#"
import json, os, sys, urllib.parse, urllib.request
ask = json.load(sys.stdin)
name, version = ask["name"], ask["version"]
if ask["ecosystem"] == "pypi":
    url = "https://pypi.org/pypi/" + urllib.parse.quote(name, safe="") + "/json"
else:
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org/"
    url = registry.rstrip("/") + "/" + urllib.parse.quote(name, safe="@")
try:
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read(ask["max"] + 1)
except Exception as e:
    print("unknown: " + url + ": " + str(e)); sys.exit(0)
if len(body) > ask["max"]:
    print("unknown: its document is larger than %d bytes" % ask["max"]); sys.exit(0)
doc = json.loads(body)
if ask["ecosystem"] == "pypi":
    times = [f.get("upload_time_iso_8601") for f in (doc.get("releases") or {}).get(version) or []]
    times = sorted(t for t in times if isinstance(t, str))
    print(times[-1] if times else "unknown: no files of version " + version)
else:
    t = (doc.get("time") or {}).get(version)
    print(t if isinstance(t, str) else "unknown: no time for version " + version)
"#;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian day (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn format_secs(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Seconds since the epoch of an RFC 3339 time (`Z` or `+HH:MM`; fractions
/// of a second dropped), as the registries write them.
fn parse_rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)? as u32, n(8..10)? as u32);
    let (h, mi, s) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let rest = t[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_as_of_is_published_or_a_past_day_and_nothing_else() {
        assert_eq!(AsOf::parse("published").unwrap(), AsOf::Published);
        assert_eq!(AsOf::parse("2025-04-25").unwrap(), AsOf::Day(2025, 4, 25));
        assert_eq!(AsOf::parse("2024-02-29").unwrap().key(), "2024-02-29");
        let tomorrow = format_secs(now_secs() + 86_400)[..10].to_string();
        let today = format_secs(now_secs())[..10].to_string();
        for hostile in [
            "",
            "Published",
            "published ",
            "2025-4-25",
            "2025-04-25T00:00:00Z",
            "2023-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "0000-01-01",
            "1970-01-01",
            "2004-12-31",
            "9999-12-31",
            "+2025-04-2",
            "２０２５-04-25",
            "2025-04-25\n",
            "--before=x",
            &today,
            &tomorrow,
        ] {
            let err = AsOf::parse(hostile).expect_err(hostile).to_string();
            assert!(
                err.contains("resolve_as_of") && err.contains("Fix:"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_cutoff_is_the_end_of_the_day_or_a_second_after_publication() {
        assert_eq!(
            format_secs(days_from_civil(2025, 4, 26) * 86_400),
            "2025-04-26T00:00:00Z"
        );
        let t = parse_rfc3339("2025-04-25T08:27:27.459457Z").unwrap();
        assert_eq!(format_secs(t + 1), "2025-04-25T08:27:28Z");
        assert_eq!(
            parse_rfc3339("2026-05-08T20:19:03.606000+00:00"),
            parse_rfc3339("2026-05-08T20:19:03Z")
        );
        assert_eq!(
            parse_rfc3339("2020-01-01T02:00:00+02:00"),
            parse_rfc3339("2020-01-01T00:00:00Z")
        );
        for bad in [
            "",
            "2025-04-25",
            "2025-02-30T00:00:00Z",
            "x025-04-25T08:27:27Z",
            "2025-04-25T08:27:27",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn npm_and_pip_get_the_cutoff_as_their_option() {
        assert_eq!(
            npmrc("2025-04-26T00:00:00Z"),
            "before=2025-04-26T00:00:00Z\n"
        );
        assert_eq!(
            pip_flag("2025-04-26T00:00:00Z"),
            OsString::from("--uploaded-prior-to=2025-04-26T00:00:00Z")
        );
    }
}
