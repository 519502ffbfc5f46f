//! build_image: key → probe → (on a miss) buildah build → stamp labels.
//!
//! A hit costs one context walk and one read of the store's image index (see
//! `probe`), with no process started when mcpod built the key. A miss builds to
//! a temporary tag, stamps the merged labels with a metadata-only commit onto the
//! final tag, and removes the temporary tag on every path (success, failure,
//! cancellation, and the caller going away).
//!
//! What buildah builds is what was hashed: it gets private copies of the
//! Containerfile bytes and of the ignore rules that went into the key, and the
//! context it reads is pinned before it runs and verified after it finished,
//! before anything is tagged (see `cache/verify.rs`); a context that changed
//! in between fails the build and leaves nothing under the key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::isolation::{self, BuildPolicy};
use super::probe::Probe;
use super::{containerfile, leftovers, reference, steps, store};
use crate::cache::{CacheKey, ContextDigest, HashedContext, KeyInputs, hash_context_for_build};
use crate::engine::{self, buildah, podman};
use crate::labels::{self, Declared, Requests, Servers};
use crate::telemetry::{Kind, Span};
use crate::{Error, Result};

/// Receives human-readable progress messages.
pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

/// What to build. Paths are already resolved and checked against the workspace root.
#[derive(Clone, Debug)]
pub struct BuildSpec {
    /// Image name without a tag; the tag is the cache key.
    pub name: String,
    pub containerfile: PathBuf,
    pub context: PathBuf,
    /// Values may reference host variables as `${NAME}`.
    pub build_args: BTreeMap<String, String>,
    /// Servers to declare, merged over what the Containerfile's labels declare.
    pub servers: Servers,
    /// Further labels to stamp (mcpod's own, e.g. what provisioning knows of a
    /// package); never `io.mcpod.*`, which [`labels::stamp`] owns.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
}

/// The result of build_image.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Built {
    /// The image tag: `<name>:<first 16 hex of the key>`.
    pub tag: String,
    /// The full cache key (64 hex).
    pub key: String,
    /// True when no build ran: the image for this key already existed.
    pub cache_hit: bool,
    /// True when this call waited for a concurrent build of the same key.
    pub waited_for_concurrent_build: bool,
    pub duration_ms: u64,
    pub image_id: String,
    /// The MCP servers the image declares (after merging).
    pub servers: Servers,
    /// Where the servers were declared (label key), if anywhere.
    pub servers_source: Option<String>,
    /// What the image asks of a session (`io.mcpod.requests`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<Requests>,
    /// Files in the build context after ignore rules.
    pub context_files: u64,
    pub context_bytes: u64,
    pub warnings: Vec<String>,
    /// The labels' own warnings (also in `warnings`), which a session of this
    /// image reports.
    #[serde(skip)]
    #[schemars(skip)]
    pub label_warnings: Vec<String>,
}

/// Build `spec` (or find it in the cache). Cancelling `cancel`, or dropping the
/// returned future, stops buildah and removes everything the build created.
pub async fn build_image(
    spec: BuildSpec,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Built> {
    let token = cancel.child_token();
    let guard = token.clone().drop_guard();
    let mut span = Span::under_current("build", None, Kind::Internal);
    span.set("mcpod.image", &spec.name);
    let work = span.run(build_inner(spec, progress, token));
    let result = tokio::spawn(work).await;
    guard.disarm();
    let built = result.map_err(|e| Error::UnexpectedOutput {
        command: "build_image".into(),
        reason: format!("the build task failed: {e}"),
    })?;
    match &built {
        Ok(built) => {
            span.set("mcpod.image", &built.tag);
            span.set("mcpod.cache_hit", built.cache_hit);
        }
        Err(e) => span.fail(e),
    }
    built
}

async fn build_inner(
    spec: BuildSpec,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Built> {
    let started = Instant::now();
    let (text, build_args) = checked(&spec)?;
    let bases = containerfile::base_images(&String::from_utf8_lossy(&text), &build_args);
    // The operator's, for every build of this process: RUN steps get no
    // network unless they allowed it.
    let policy = isolation::policy();
    let (mut probe, digest, hashed) = walk_and_probe(&spec, &bases).await?;
    let mut warnings = Vec::new();
    let base_images = base_ids(&probe, bases, &mut warnings);
    let requested = requested_labels(&spec)?;
    let key = CacheKey::compute(&KeyInputs {
        containerfile: &text,
        build_args: &build_args,
        labels: &requested,
        base_images: &base_images,
        context: &digest,
        network: policy.network,
    });
    let name = reference::qualified(&spec.name);
    let finish = Finish {
        tag: format!("{name}:{}", key.tag()),
        key_hex: key.hex(),
        started,
        context_files: digest.files,
        context_bytes: digest.bytes,
    };
    let (tag, key_hex) = (&finish.tag, &finish.key_hex);

    if !spec.no_cache
        && let Some((image_id, declared)) = probe.hit(key_hex, tag).await?
    {
        return Ok(finish.built(image_id, declared, true, false, warnings));
    }

    (progress)(format!("cache miss for {tag}; waiting for the build lock"));
    let lock = tokio::select! {
        lock = store::lock_key(key_hex) => lock?,
        _ = cancel.cancelled() => return Err(Error::Cancelled { what: format!("the build of {tag}") }),
    };
    let waited = !spec.no_cache;
    if waited && let Some((image_id, declared)) = built_meanwhile(key_hex, tag).await? {
        return Ok(finish.built(image_id, declared, true, true, warnings));
    }

    let miss = Miss {
        text,
        build_args,
        base_images,
        hashed,
        temp: format!("{name}:mcpod-tmp-{}-{}", key.tag(), engine::nonce()),
        tag: tag.clone(),
    };
    let (image_id, declared) = build_miss(&spec, miss, &probe, policy, &progress, cancel).await?;
    store::write_record(
        key_hex,
        &store::Record {
            image_id: image_id.clone(),
            tag: tag.clone(),
            declared: declared.clone(),
        },
    )?;
    drop(lock);
    (progress)(format!("built {tag}"));
    Ok(finish.built(image_id, declared, false, false, warnings))
}

/// Check what cannot be built before anything runs: the image name, the
/// servers, the Containerfile (read from inside the context) and its steps.
/// Returns the Containerfile's bytes and the build args resolved from the
/// host's environment.
fn checked(spec: &BuildSpec) -> Result<(Vec<u8>, BTreeMap<String, String>)> {
    reference::validate_name(&spec.name)?;
    labels::validate_servers(&spec.servers)?;
    let text = containerfile::read(&spec.containerfile, &spec.context)?;
    steps::check(
        &spec.containerfile.display().to_string(),
        &String::from_utf8_lossy(&text),
    )?;
    let build_args = resolve_build_args(&spec.name, &spec.build_args, |v| std::env::var(v).ok())?;
    Ok((text, build_args))
}

/// Hash the build context while local storage is probed for `bases`: the
/// two are independent, so they run together.
async fn walk_and_probe(
    spec: &BuildSpec,
    bases: &[String],
) -> Result<(Probe, ContextDigest, HashedContext)> {
    let context = spec.context.clone();
    let containerfile = spec.containerfile.clone();
    let stat_cache = store::stat_cache_path(&context);
    let walk = tokio::task::spawn_blocking(move || {
        hash_context_for_build(&context, Some(&containerfile), Some(&stat_cache))
    });
    let probe = Probe::take(bases).await?;
    let (digest, hashed) = walk.await.map_err(|e| Error::UnexpectedOutput {
        command: "hashing the build context".into(),
        reason: e.to_string(),
    })??;
    Ok((probe, digest, hashed))
}

/// Each base image with its ID in local storage (empty, with a warning,
/// for one that is not there: buildah will pull it).
fn base_ids(
    probe: &Probe,
    bases: Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    bases
        .into_iter()
        .map(|base| {
            let id = probe.id_of(&base).unwrap_or_else(|| {
                warnings.push(format!(
                    "base image `{base}` is not in local storage; buildah will try to pull it, and the next build will get a new key once it is local"
                ));
                String::new()
            });
            (base, id)
        })
        .collect()
}

/// The labels the spec asks for, with its servers under `io.mcpod.servers`;
/// an `io.mcpod.*` label of its own is refused (those are stamped).
fn requested_labels(spec: &BuildSpec) -> Result<BTreeMap<String, String>> {
    if let Some(key) = spec.labels.keys().find(|k| k.starts_with("io.mcpod.")) {
        return Err(Error::invalid(
            "labels",
            key.as_str(),
            "`io.mcpod.*` labels are stamped from `servers`",
            "declare servers in `servers`",
        ));
    }
    let mut requested = spec.labels.clone();
    if !spec.servers.is_empty() {
        requested.insert(
            labels::SERVERS.to_string(),
            labels::canonical_servers_json(&spec.servers),
        );
    }
    Ok(requested)
}

/// What every answer of one build shares: its tag, key, start and context.
struct Finish {
    tag: String,
    key_hex: String,
    started: Instant,
    context_files: u64,
    context_bytes: u64,
}

impl Finish {
    /// The answer for the image `image_id`, with the labels' warnings added
    /// to `warnings`.
    fn built(
        &self,
        image_id: String,
        declared: Declared,
        cache_hit: bool,
        waited: bool,
        mut warnings: Vec<String>,
    ) -> Built {
        warnings.extend(declared.warnings.iter().cloned());
        Built {
            requests: declared.requests,
            label_warnings: declared.warnings,
            tag: self.tag.clone(),
            key: self.key_hex.clone(),
            cache_hit,
            waited_for_concurrent_build: waited,
            duration_ms: self.started.elapsed().as_millis() as u64,
            image_id,
            servers: declared.servers,
            servers_source: declared.source,
            context_files: self.context_files,
            context_bytes: self.context_bytes,
            warnings,
        }
    }
}

/// The image a concurrent build tagged `tag` while this one waited for the
/// lock, with what it declares. As `Probe::hit`: a tag moved off the image
/// mcpod recorded is built again (none).
async fn built_meanwhile(key_hex: &str, tag: &str) -> Result<Option<(String, Declared)>> {
    let Some(found) = buildah::inspect_image(tag).await? else {
        return Ok(None);
    };
    let declared = match store::record(key_hex) {
        Some(record) if record.image_id == found.id => Some(record.declared),
        Some(_) => None,
        None => Some(labels::read(&found.labels)?),
    };
    Ok(declared.map(|declared| (found.id, declared)))
}

/// What a build on a cache miss is made of.
struct Miss {
    text: Vec<u8>,
    build_args: BTreeMap<String, String>,
    base_images: Vec<(String, String)>,
    hashed: HashedContext,
    /// The temporary tag buildah builds to.
    temp: String,
    /// The final tag.
    tag: String,
}

/// Build on a cache miss: buildah builds to the temporary tag, the labels
/// are stamped onto the final tag, and the temporary tag (and the working
/// containers of a stopped build) go on every path. A forced rebuild also
/// removes the image it took the tag from. Returns the image ID and what it
/// declares.
async fn build_miss(
    spec: &BuildSpec,
    miss: Miss,
    probe: &Probe,
    policy: &BuildPolicy,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<(String, Declared)> {
    let Miss {
        text,
        build_args,
        base_images,
        hashed,
        temp,
        tag,
    } = miss;
    // A forced rebuild moves the tag; the image it leaves nameless goes too.
    let previous = spec.no_cache.then(|| probe.id_of(&tag)).flatten();
    (progress)(format!("building {tag}"));
    let bases: Vec<String> = base_images.iter().map(|(b, _)| b.clone()).collect();
    let from_scratch = containerfile::builds_from_scratch(&String::from_utf8_lossy(&text));
    let working = WorkingContainers::snapshot(&bases, from_scratch).await?;
    let inputs = Inputs::stage(&text, hashed, isolation::flags(policy))?;
    let built = build_and_stamp(
        spec,
        &build_args,
        inputs,
        &temp,
        &tag,
        progress.clone(),
        cancel,
    )
    .await;
    // Runs on every path: this task is never dropped mid-way (see build_image).
    // A failing buildah removes its own containers (--force-rm); only one
    // stopped mid-way leaves its working container behind.
    if built.as_ref().is_err_and(Error::is_cancelled) {
        working.remove_new().await;
    }
    // Untagged, not removed: buildah's layer cache may have handed this very
    // image to a concurrent build of the same steps, which would lose it.
    if let Err(e) = podman::untag(&temp).await {
        tracing::warn!("could not remove the temporary tag {temp}: {e}");
    }
    let (image_id, declared) = built.map_err(|e| offline_hint(policy, e))?;
    if let Some(old) = previous.filter(|old| *old != image_id) {
        // Refused (and kept) if a container uses it or it has other names.
        let _ = buildah::remove_image(&old).await;
    }
    Ok((image_id, declared))
}

/// What buildah reads besides the context: private copies of the bytes that
/// went into the key. Removed when dropped.
struct Inputs {
    dir: store::BuildDir,
    containerfile: PathBuf,
    ignorefile: PathBuf,
    hashed: HashedContext,
    /// What RUN steps get (see `isolation`).
    run_flags: Vec<String>,
}

impl Inputs {
    fn stage(
        containerfile: &[u8],
        hashed: HashedContext,
        run_flags: Vec<String>,
    ) -> Result<Inputs> {
        let dir = store::BuildDir::create()?;
        let containerfile = dir.write("Containerfile", containerfile)?;
        let ignorefile = dir.write("ignore", hashed.ignore_text().as_bytes())?;
        Ok(Inputs {
            dir,
            containerfile,
            ignorefile,
            hashed,
            run_flags,
        })
    }
}

/// A failed RUN step's error, with the fix for a step that needed the
/// network when builds have none.
fn offline_hint(policy: &BuildPolicy, e: Error) -> Error {
    match e {
        Error::CommandFailed {
            command,
            status,
            stderr_tail,
            hint,
        } => Error::CommandFailed {
            hint: hint + &isolation::offline_hint(policy, &stderr_tail).unwrap_or_default(),
            command,
            status,
            stderr_tail,
        },
        other => other,
    }
}

/// Run a context check off the async threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::UnexpectedOutput {
            command: what.to_string(),
            reason: e.to_string(),
        })?
}

async fn build_and_stamp(
    spec: &BuildSpec,
    build_args: &BTreeMap<String, String>,
    inputs: Inputs,
    temp: &str,
    tag: &str,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<(String, Declared)> {
    let Inputs {
        dir: _dir,
        containerfile,
        ignorefile,
        hashed,
        run_flags,
    } = inputs;
    let pinned = blocking("pinning the build context", move || hashed.pin()).await?;
    let marker = leftovers::marker()?;
    let lines = progress.clone();
    buildah::build(
        &buildah::BuildRequest {
            containerfile: &containerfile,
            ignorefile: &ignorefile,
            context: &spec.context,
            tag: temp,
            build_args,
            no_cache: spec.no_cache,
            run_flags: &run_flags,
            marker: &marker,
        },
        cancel.clone(),
        Box::new(move |line| (lines)(line.to_string())),
    )
    .await?;
    // Before anything gets a name that stays: what buildah read was what was hashed.
    blocking("verifying the build context", move || pinned.verify()).await?;
    // Asked again when not found: buildah 1.28 answers "not found" while
    // another process changes the store's layers (seen once in a clean CI run).
    let mut inherited = None;
    for wait in [0, 200, 1000] {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        inherited = buildah::inspect_image(temp).await?;
        if inherited.is_some() {
            break;
        }
    }
    let inherited = inherited.ok_or_else(|| Error::UnexpectedOutput {
        command: format!("buildah inspect {temp}"),
        reason: "the image buildah just built is not there".into(),
    })?;
    let mut stamped = labels::stamp(&inherited.labels, &spec.servers)?;
    stamped.extend(spec.labels.clone());
    let mut all = inherited.labels.clone();
    all.extend(stamped.clone());
    let declared = labels::read(&all)?;
    (progress)(format!("stamping labels onto {tag}"));
    buildah::stamp_labels(temp, &stamped, tag, &marker, cancel).await?;
    let image = buildah::inspect_image(tag)
        .await?
        .ok_or_else(|| Error::UnexpectedOutput {
            command: format!("buildah inspect {tag}"),
            reason: "the stamped image is not there".into(),
        })?;
    Ok((image.id, declared))
}

/// The working containers a build may create, for removal when buildah is
/// stopped before it could remove them itself (it names them
/// `<base name>-working-container[-N]`, and `working-container` for scratch).
struct WorkingContainers {
    before: HashSet<String>,
    in_flight: InFlight,
}

impl WorkingContainers {
    async fn snapshot(bases: &[String], from_scratch: bool) -> Result<Self> {
        let mut prefixes: Vec<String> = bases
            .iter()
            .map(|b| {
                let path = b.split('@').next().unwrap_or(b);
                let last = path.rsplit('/').next().unwrap_or(path);
                let name = last.split(':').next().unwrap_or(last);
                format!("{name}-working-container")
            })
            .collect();
        if from_scratch {
            prefixes.push("working-container".into());
        }
        let before = buildah::containers()
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let in_flight = InFlight::enter(&prefixes);
        Ok(WorkingContainers { before, in_flight })
    }

    /// Remove containers that appeared since the snapshot and carry one of this
    /// build's names, unless another build in this process could own them.
    async fn remove_new(&self) {
        let Ok(now) = buildah::containers().await else {
            return;
        };
        for c in now {
            // A name another build of this process is using now is left alone.
            let ours = self.in_flight.exclusive().iter().any(|p| {
                c.name == *p
                    || c.name
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            });
            if ours && !self.before.contains(&c.id) {
                tracing::info!(
                    "removing working container {} left by a stopped build",
                    c.name
                );
                buildah::remove_container(&c.id).await;
            }
        }
    }
}

/// Counts the builds of this process per working-container name.
struct InFlight {
    prefixes: Vec<String>,
}

fn in_flight_map() -> &'static Mutex<HashMap<String, usize>> {
    static MAP: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

impl InFlight {
    fn enter(prefixes: &[String]) -> InFlight {
        let mut map = in_flight_map().lock().unwrap_or_else(|p| p.into_inner());
        for p in prefixes {
            *map.entry(p.clone()).or_default() += 1;
        }
        InFlight {
            prefixes: prefixes.to_vec(),
        }
    }

    /// The prefixes no other build of this process is using right now.
    fn exclusive(&self) -> Vec<String> {
        let map = in_flight_map().lock().unwrap_or_else(|p| p.into_inner());
        self.prefixes
            .iter()
            .filter(|p| map.get(*p).copied().unwrap_or_default() <= 1)
            .cloned()
            .collect()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = in_flight_map().lock().unwrap_or_else(|p| p.into_inner());
        for p in &self.prefixes {
            if let Some(n) = map.get_mut(p) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Substitute `${NAME}` in build-arg values from the host environment.
pub fn resolve_build_args(
    image: &str,
    args: &BTreeMap<String, String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (arg, value) in args {
        if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::invalid(
                "build arg name",
                arg,
                "it must be letters, digits and '_'",
                "rename the build arg",
            ));
        }
        let mut resolved = String::new();
        let mut rest = value.as_str();
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let end = after.find('}');
            let name = end.map(|e| &after[..e]);
            match name {
                Some(var) if is_var_name(var) => {
                    let value = lookup(var).ok_or_else(|| Error::MissingBuildArgVar {
                        image: image.to_string(),
                        arg: arg.clone(),
                        var: var.to_string(),
                    })?;
                    resolved.push_str(&rest[..start]);
                    resolved.push_str(&value);
                    rest = &after[var.len() + 1..];
                }
                _ => {
                    resolved.push_str(&rest[..start + 2]);
                    rest = after;
                }
            }
        }
        resolved.push_str(rest);
        out.insert(arg.clone(), resolved);
    }
    Ok(out)
}

fn is_var_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_resolve_from_the_host() {
        let args = BTreeMap::from([
            ("A".to_string(), "${HOME_DIR}/x".to_string()),
            ("B".to_string(), "literal $X ${1} ${".to_string()),
        ]);
        let env = |v: &str| (v == "HOME_DIR").then(|| "/h".to_string());
        let out = resolve_build_args("img", &args, env).expect("resolves");
        assert_eq!(out["A"], "/h/x");
        assert_eq!(out["B"], "literal $X ${1} ${");

        let missing = BTreeMap::from([("TOKEN".to_string(), "${NOPE}".to_string())]);
        let err = resolve_build_args("img", &missing, env)
            .expect_err("unset")
            .to_string();
        assert!(
            err.contains("`img`") && err.contains("`TOKEN`") && err.contains("`NOPE`"),
            "{err}"
        );
    }
}
