//! Resolved once, recalled after: a request's lock is read from the state
//! dir when it was recorded (no npm, pip or network on a repeat), and
//! otherwise resolved, chosen a runtime for, and recorded.

use super::as_of;
use super::bases::{self, Base, Runtime};
use super::choose;
use super::files::{TempDir, atomic_write, read_small, write};
use super::npm;
use super::npm_platform::Platform;
use super::plan::Plan;
use super::reference::Ecosystem;
use super::{Resolution, Steps, request_key, target};
use crate::image::store;
use crate::{Error, Result};

/// A request's lock and the base it runs on.
pub struct Resolved {
    pub resolution: Resolution,
    pub lock: Vec<u8>,
    pub base: Base,
    /// Whether a registry was asked.
    pub fetched: bool,
}

/// The lock for `plan` on `platform`, recalled unless `refresh`; `base` is
/// the Python chosen before resolving (none for npm).
pub async fn resolved(
    plan: &Plan,
    refresh: bool,
    base: Option<Base>,
    platform: &Platform,
    steps: &mut Steps<'_>,
) -> Result<Resolved> {
    let request = request_key(
        &plan.package,
        &plan.pins,
        &target(&plan.package, base.as_ref(), platform),
        &plan.runtime_named,
        plan.as_of.as_ref(),
        &plan.system,
    );
    let root = store::state_dir().join("provision");
    let request_path = root.join("requests").join(format!("{request}.json"));
    let recorded = (!refresh)
        .then(|| bases::read_json::<Resolution>(&request_path))
        .flatten()
        .and_then(|r| {
            let lock = read_small(&root.join("locks").join(&r.lock)).ok()?;
            Some((r, lock))
        });
    let (resolution, lock, base, fetched) = match recorded {
        Some((resolution, lock)) => {
            let base = recall_base(&resolution, plan.runtime, base, steps).await?;
            (resolution, lock, base, false)
        }
        None => {
            let (resolution, lock, base) = resolve(plan, base, platform, &root, steps).await?;
            bases::write_json(&request_path, &resolution)?;
            (resolution, lock, base, true)
        }
    };
    let base = base.ok_or_else(|| Error::UnexpectedOutput {
        command: "provisioning".into(),
        reason: "no base was chosen".into(),
    })?;
    Ok(Resolved {
        resolution,
        lock,
        base,
        fetched,
    })
}

/// The runtime recorded with a lock (none: recorded before runtimes were
/// chosen, on the host's), resolved unless `base` is already it.
async fn recall_base(
    resolution: &Resolution,
    runtime: Runtime,
    base: Option<Base>,
    steps: &mut Steps<'_>,
) -> Result<Option<Base>> {
    let pick = resolution
        .runtime
        .as_deref()
        .and_then(bases::Pick::from_id)
        .unwrap_or(bases::Pick::Host(runtime));
    steps.notes.push(format!(
        "runs on {}, as chosen when the lock was recorded (`refresh` chooses again)",
        pick.id()
    ));
    if base.as_ref().is_none_or(|b| b.id != pick.id()) {
        let (operator, progress, cancel) = (steps.operator, steps.progress.clone(), &steps.cancel);
        return Ok(Some(
            bases::resolve(&pick, operator, progress, cancel.clone()).await?,
        ));
    }
    Ok(base)
}

/// Resolve `plan` to a lock, choose its runtime, and keep the lock under
/// `root/locks` by its digest.
async fn resolve(
    plan: &Plan,
    mut base: Option<Base>,
    platform: &Platform,
    root: &std::path::Path,
    steps: &mut Steps<'_>,
) -> Result<(Resolution, Vec<u8>, Option<Base>)> {
    let package = &plan.package;
    (steps.progress)(format!("resolving {package}"));
    let work = TempDir::create(&root.join(format!("work-{}", crate::engine::nonce())))?;
    let cancel = steps.cancel.clone();
    let cutoff = match &plan.as_of {
        Some(a) => Some(a.cutoff(package, cancel.clone()).await?),
        None => None,
    };
    if let (Ecosystem::Npm, Some(cutoff)) = (package.ecosystem, &cutoff) {
        // npm reads the project's .npmrc from its directory.
        write(&work.path().join(".npmrc"), as_of::npmrc(cutoff).as_bytes())?;
    }
    let pip = match (package.ecosystem, &cutoff) {
        (Ecosystem::Pypi, Some(cutoff)) => Some((
            as_of::pip_wheel(&root.join("pip"), cancel.clone()).await?,
            cutoff.as_str(),
        )),
        _ => None,
    };
    let operator = steps.operator;
    let (lock, version) = match (package.ecosystem, &base) {
        (Ecosystem::Pypi, Some(first)) => {
            let (lock, version, other) = choose::pypi(
                package,
                &plan.pins,
                first,
                plan.asked.is_none() && !operator.contains_key(&plan.runtime),
                work.path(),
                pip.as_ref().map(|(w, c)| (w.as_path(), *c)),
                &steps.progressed,
                operator,
                cancel,
            )
            .await?;
            if let Some((why, other)) = other {
                steps.notes.push(why);
                base = Some(other);
            }
            (lock, version)
        }
        _ => {
            let (lock, version) = npm::resolve(
                package,
                &plan.pins,
                platform,
                work.path(),
                &steps.progressed,
                cancel.clone(),
            )
            .await?;
            let (chosen, why, more) = choose::node(
                package,
                &lock,
                plan.asked.as_ref(),
                operator,
                steps.progress.clone(),
                cancel,
            )
            .await?;
            steps.notes.extend(why);
            steps.warnings.extend(more);
            base = Some(chosen);
            (lock, version)
        }
    };
    let digest = blake3::hash(&lock).to_hex()[..32].to_string();
    atomic_write(&root.join("locks").join(&digest), &lock)?;
    let resolution = Resolution {
        version,
        lock: digest,
        cutoff,
        runtime: base.as_ref().map(|b| b.id.clone()),
    };
    Ok((resolution, lock, base))
}
