//! launch_session: resolve the image, grant its requests, start the container
//! and its servers, and add the session to [`Sessions`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::container;
use super::live::{Session, shut_down};
use super::recipe::{
    Recipe, Resolved, apply_overrides, check_env_taken, choose_servers, recipe_key, resolve_envs,
};
use super::registry::{Sessions, reap};
use super::servers::{as_of_publication, no_server_ready, start_failure_fix};
use super::stream::SessionStream;
use super::{Isolation, LaunchInput, SessionInfo, SessionState};
use crate::engine;
use crate::engine::engines::{Engine, LOCAL};
use crate::engine::userns::Local;
use crate::image::{self, Built, Progress};
use crate::labels::ServerSpec;
use crate::proxy::{Child, Status};
use crate::telemetry::{Kind, Span};
use crate::{Error, Result};

impl Sessions {
    /// Launch a session. Cancelling (or dropping the future) removes the container.
    pub async fn launch(
        self: &Arc<Self>,
        input: LaunchInput,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<SessionInfo> {
        self.reaper.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self), self.changed.subscribe()));
        });
        // The local host's facts (`podman info`, `podman version`) while the
        // image is resolved and the policy checked, not after.
        self.learn_local_soon();
        // Cancelled by the caller, by dropping this future, or by `stop_all`;
        // the launch then removes what it started, in its own task.
        let token = self.closing.child_token();
        let guard = token.clone().drop_guard();
        let this = self.clone();
        let inner = token.clone();
        let mut span = Span::under_current("launch", None, Kind::Internal);
        span.set("mcpod.image", &input.image);
        let work = span.run(async move { this.launch_inner(input, progress, inner).await });
        let mut launched = self.launches.spawn(work);
        let result = tokio::select! {
            result = &mut launched => result,
            _ = cancel.cancelled() => {
                token.cancel();
                launched.await
            }
        };
        guard.disarm();
        let launched = result.map_err(|e| Error::UnexpectedOutput {
            command: "launch_session".into(),
            reason: e.to_string(),
        })?;
        match &launched {
            Ok(info) => {
                span.set("mcpod.session", &info.session);
                span.set("mcpod.image", &info.image);
            }
            Err(e) => span.fail(e),
        }
        launched
    }

    async fn launch_inner(
        self: &Arc<Self>,
        mut input: LaunchInput,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<SessionInfo> {
        // Checked and reserved under the map's lock, so launches at once cannot
        // all pass the check before any of them is in the map.
        let _slot = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let running = map
                .values()
                .filter(|s| s.state() == SessionState::Running)
                .count()
                + self.launching.load(Ordering::SeqCst);
            if running >= self.policy.max_sessions {
                return Err(Error::invalid(
                    "session count",
                    running.to_string(),
                    format!(
                        "the operator allows {} sessions at once",
                        self.policy.max_sessions
                    ),
                    "stop a session first (stop_session)",
                ));
            }
            self.launching.fetch_add(1, Ordering::SeqCst);
            LaunchSlot(&self.launching)
        };
        // What the policy refuses is refused before any resolution or build.
        self.check_before_resolving(&input).await?;
        let asked = input.clone();
        let provisioned = self.provision_for(&mut input, &progress, &cancel).await?;
        let failed = match self.launch_resolved(&input, &progress, &cancel).await {
            Ok(mut info) => {
                info.provisioned = provisioned.map(Box::new);
                self.keep_provisioned(&info);
                return Ok(info);
            }
            Err(e) => e,
        };
        let Some(mut again) = as_of_publication(asked, provisioned.as_ref(), &failed) else {
            return Err(failed);
        };
        // Its servers failed on today's dependencies (an import or attribute
        // error): once more, resolved as they stood when it was published.
        (progress)(
            "its servers failed on today's releases of its dependencies; provisioning it again as of its publication (`resolve_as_of: \"published\"`)"
                .into(),
        );
        let provisioned = self.provision_for(&mut again, &progress, &cancel).await?;
        let mut info = match self.launch_resolved(&again, &progress, &cancel).await {
            Ok(info) => info,
            // Say both: today's failure (with its fix) and what happened as
            // of its publication.
            Err(retried) => {
                return Err(match failed {
                    Error::NoServerReady {
                        image,
                        session,
                        reasons,
                        fix,
                    } => Error::NoServerReady {
                        image,
                        session,
                        reasons: format!(
                            "{reasons}; provisioned again as of its publication, it failed too: {retried}"
                        ),
                        fix,
                    },
                    other => other,
                });
            }
        };
        info.provisioned = provisioned.map(|mut p| {
            p.notes.push(
                "today's dependencies failed its servers at start (an import or attribute error), so it was resolved as of its publication; pin `resolve_as_of` to keep that, or `pins` to choose".into(),
            );
            Box::new(p)
        });
        self.keep_provisioned(&info);
        Ok(info)
    }

    /// What of a launch the operator's policy decides without the image's
    /// labels, checked before any package is resolved, fetched or built:
    /// the env names, the engine, the mounts (a writable one against the
    /// session user's access too), the network, egress and forwards asked,
    /// the limits and lease, and the writable paths' sizes.
    pub(super) async fn check_before_resolving(&self, input: &LaunchInput) -> Result<()> {
        let policy = self.policy_of(input);
        policy.check_env_names(input.env.keys())?;
        if let Some(name) = input.engine.as_deref() {
            // Placed and let go at once: the name, and mounts only locally.
            self.engines.place(
                Some(name),
                !input.mounts.is_empty(),
                policy.only_engines.as_deref(),
                |n| self.load_of(n),
            )?;
        }
        let isolation = policy.grant(&input.ask(), None, String::new())?;
        if isolation.mounts.iter().any(|m| !m.read_only) {
            let local = self.user_on(self.engines.local()).await?;
            for mount in isolation.mounts.iter().filter(|m| !m.read_only) {
                local.writable_mount(&mount.source)?;
            }
        }
        Ok(())
    }

    /// Keep what was provisioned for a launch with its session, for its detail.
    fn keep_provisioned(&self, info: &SessionInfo) {
        if let (Some(p), Ok(session)) = (&info.provisioned, self.get(&info.session)) {
            let _ = session.provisioned.set(p.clone());
        }
    }

    /// A launch of a package reference (or of `provision`): build its image
    /// (a cache hit when nothing changed) and launch that.
    pub(super) async fn provision_for(
        &self,
        input: &mut LaunchInput,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Option<crate::provision::Provisioned>> {
        let request = match (
            input.provision.take(),
            crate::provision::is_package_reference(&input.image),
        ) {
            (None, false) => return Ok(None),
            (None, true) => crate::provision::ProvisionRequest {
                package: Some(input.image.clone()),
                ..Default::default()
            },
            (Some(mut request), is_ref) => {
                if is_ref && request.package.is_none() && request.server_json.is_none() {
                    request.package = Some(input.image.clone());
                } else if !input.image.is_empty() {
                    return Err(Error::invalid(
                        "image",
                        &input.image,
                        "both `image` and `provision` name what to launch",
                        "give one of them (a package reference may go in either)",
                    ));
                }
                request
            }
        };
        let provisioned = crate::provision::provision(
            request,
            &self.policy.bases,
            &self.policy.system_packages,
            progress.clone(),
            cancel.clone(),
        )
        .await?;
        self.remember_build(&provisioned.image);
        input.image = provisioned.image.tag.clone();
        Ok(Some(provisioned))
    }

    async fn launch_resolved(
        self: &Arc<Self>,
        input: &LaunchInput,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionInfo> {
        if input.image.is_empty() {
            return Err(Error::invalid(
                "image",
                "",
                "no image was given",
                "give `image` (a tag, a name, an ID, or `npm:`/`pypi:` package reference) or `provision`",
            ));
        }
        let key = image::reference::qualified(&input.image);
        let built = self
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
            .or_else(|| self.pool.resolution(&input.image));
        let remembered = match built {
            Some(built) => Some(built),
            None => self.known.get(&input.image).await,
        };
        let Some(remembered) = remembered else {
            let image = self.resolve_image(&input.image).await?;
            return self.launch_image(input, &image, progress, cancel).await;
        };
        let failed = match self
            .launch_image(input, &remembered, progress, cancel)
            .await
        {
            Err(e @ Error::CommandFailed { .. }) => e,
            done => return done,
        };
        // The image this tag named when it was built may be gone (gc, a
        // rebuild elsewhere): ask podman, and run again only if the tag now
        // names another image.
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        self.pool.forget_resolution(&input.image);
        self.known.forget(&input.image);
        let image = self.resolve_image(&input.image).await?;
        if image.id == remembered.id {
            return Err(failed);
        }
        self.launch_image(input, &image, progress, cancel).await
    }

    /// Inspect `reference` (its ID, labels and user: one podman process),
    /// and keep the answer for its next launch, checked against the store's
    /// index in the background (see `known.rs`).
    async fn resolve_image(self: &Arc<Self>, reference: &str) -> Result<Arc<Resolved>> {
        let image = Arc::new(Resolved::from(image::inspect_labels(reference).await?));
        let (this, reference, kept) = (self.clone(), reference.to_string(), image.clone());
        tokio::spawn(async move { this.known.keep(&reference, kept).await });
        Ok(image)
    }

    /// Remember what a build produced, so launching its tag needs no
    /// `podman image inspect`: the tag is content-addressed and the image ID
    /// names immutable content (labels included).
    pub fn remember_build(&self, built: &Built) {
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(built.tag.clone(), Arc::new(Resolved::from(built)));
    }

    async fn launch_image(
        self: &Arc<Self>,
        input: &LaunchInput,
        image: &Resolved,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionInfo> {
        // A warm session of the spec (the pool keeps them on the local
        // engine) wins over placement.
        let local = self.engines.local().clone();
        let local_allowed = self
            .policy_of(input)
            .only_engines
            .as_ref()
            .is_none_or(|only| only.iter().any(|e| e == LOCAL));
        let warm = match input.engine.as_deref() {
            None | Some(LOCAL) if local_allowed => {
                let recipe = Arc::new(self.recipe(input, image, &local).await?);
                self.pool.take(&recipe.key).map(|s| (recipe, s))
            }
            _ => None,
        };
        let (recipe, session, _placed) = match warm {
            Some((recipe, session)) => {
                session.hand_out();
                (progress)(format!(
                    "handed out warm session {} ({})",
                    session.id, session.container
                ));
                (recipe, session, None)
            }
            None => {
                let mut retried = false;
                loop {
                    let placed = self.engines.place(
                        input.engine.as_deref(),
                        !input.mounts.is_empty(),
                        self.policy_of(input).only_engines.as_deref(),
                        |name| self.load_of(name),
                    )?;
                    let recipe = Arc::new(self.recipe(input, image, &placed.engine).await?);
                    let failed = match self.start_session(&recipe, progress, cancel, false).await {
                        Ok(session) => break (recipe, session, Some(placed)),
                        Err(e) => e,
                    };
                    let engine = &placed.engine;
                    // An image this process took to be on the engine is gone
                    // (removed there since): ask again and ship it, once.
                    if !retried
                        && !engine.is_local()
                        && !cancel.is_cancelled()
                        && image_gone(&failed)
                        && self.shipper.forget(&engine.name)
                    {
                        (progress)(format!(
                            "engine {} no longer has the session image; shipping it again",
                            engine.name
                        ));
                        retried = true;
                        continue;
                    }
                    // An engine that no longer answers fails the launch only
                    // when the launch named it: else it is left out, once.
                    if retried
                        || input.engine.is_some()
                        || engine.is_local()
                        || cancel.is_cancelled()
                        || engine.podman.ping(Duration::from_secs(5)).await.is_ok()
                    {
                        return Err(failed);
                    }
                    engine.mark_down();
                    (progress)(format!(
                        "engine {} does not answer, placing the launch again: {failed}",
                        engine.name
                    ));
                    retried = true;
                }
            }
        };
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.id.clone(), session.clone());
        let _ = self.changed.send(crate::proxy::Change::of(&session.id));
        self.after_launch(&recipe);
        Ok(self.info(&session))
    }

    /// Everything a launch of `image` for `input` starts, checked against
    /// the image's declarations and the operator's policy, with its key.
    pub(super) async fn recipe(
        &self,
        input: &LaunchInput,
        image: &Resolved,
        engine: &Arc<Engine>,
    ) -> Result<Recipe> {
        let chosen = choose_servers(input, image)?;
        let chosen = apply_overrides(chosen, &input.overrides)?;
        let policy = self.policy_of(input);
        policy.check_env_names(input.env.keys())?;
        check_env_taken(&input.env, &chosen)?;
        let envs = resolve_envs(&chosen, &input.env, &policy.allowed_env)?;
        let (isolation, user) = self.isolation_on(input, image, engine).await?;
        let key = recipe_key(&image.id, &chosen, &envs, &isolation, &user, &engine.name);
        let mut warnings = image.warnings.clone();
        warnings.extend(isolation.warnings.iter().cloned());
        Ok(Recipe {
            key,
            image: input.image.clone(),
            image_id: image.id.clone(),
            chosen,
            envs,
            isolation,
            warnings,
            engine: engine.clone(),
            user,
        })
    }

    /// What a launch of `image` for `input` is granted on `engine`, and the
    /// user its servers run as there: the policy's grant, with limits marked
    /// unenforced where that podman ignores them, how each writable mount is
    /// written (an id-mapped one only for an image that runs as root), and a
    /// warning where servers running as nobody cannot change the image's
    /// own files in a writable image path.
    async fn isolation_on(
        &self,
        input: &LaunchInput,
        image: &Resolved,
        engine: &Engine,
    ) -> Result<(Isolation, container::UserMode)> {
        let local = self.user_on(engine).await?;
        let user = local.user.clone();
        let mut isolation =
            self.policy_of(input)
                .grant(&input.ask(), image.requests.as_ref(), user.describe())?;
        if !local.limits_enforced {
            isolation.limits_enforced = false;
            isolation.warnings.push(
                "memory, pids and cpu limits are not enforced: rootless podman on cgroups v1 ignores them (the lease still ends the session)".into(),
            );
        }
        for mount in isolation.mounts.iter_mut().filter(|m| !m.read_only) {
            mount.written_as = local.writable_mount(&mount.source)?;
        }
        if isolation.mounts.iter().any(|m| m.written_as.is_some()) {
            runs_as_root(image).await?;
        }
        let image_paths = || isolation.tmpfs.keys().any(|p| p != "/tmp" && p != "/run");
        if user == container::UserMode::Nobody && image_paths() {
            // No user namespace: the copies keep the image's owners (root),
            // and a server running as nobody can only add files at the top.
            isolation.warnings.push(
                "the servers run as 65534 without a user namespace: in a writable image path they can add files, but the image's own files there stay root's; give podman subordinate IDs (scripts/setup) for a user namespace".into(),
            );
        }
        Ok((isolation, user))
    }

    /// How server processes avoid host root (and the user) on `engine`,
    /// whether its podman enforces limits, and how a writable mount is
    /// written: on the local one, decided from this host; on another, from
    /// its podman's version.
    async fn user_on(&self, engine: &Engine) -> Result<Local> {
        if engine.is_local() {
            let local = self.local.get_or_init(Local::detect).await.clone();
            local.user.usable()?;
            return Ok(local);
        }
        Ok(Local::remote(engine.version().await?))
    }

    /// Ask the local host's facts in the background, once: a launch that
    /// needs them then waits only for what is left of that.
    pub(super) fn learn_local_soon(&self) {
        if self.local.initialized() {
            return;
        }
        let local = self.local.clone();
        tokio::spawn(async move {
            local.get_or_init(Local::detect).await;
        });
    }

    /// How a writable mount is written on the local engine, for show_policy.
    pub async fn writable_mounts(&self) -> String {
        self.local
            .get_or_init(Local::detect)
            .await
            .writable_mounts()
    }

    /// Start a session of `recipe`: its container and servers (not yet in
    /// the map). A pooled one gets a longer container lease, to wait in the pool.
    pub(super) async fn start_session(
        &self,
        recipe: &Recipe,
        progress: &Progress,
        cancel: &CancellationToken,
        pooled: bool,
    ) -> Result<Arc<Session>> {
        let engine = &recipe.engine;
        let supervisor = if engine.is_local() {
            Some(crate::image::supervised::binary()?)
        } else {
            None
        };
        let id = format!("s{}", &engine::nonce()[..5]);
        let name = format!("mcpod-{id}");
        let lease_secs = recipe.isolation.lease_secs;
        let timeout_secs = lease_secs
            + if pooled {
                super::pool::IDLE.as_secs()
            } else {
                0
            };
        let image_id = match &supervisor {
            Some(_) => recipe.image_id.clone(),
            None => self.ship(recipe, progress, cancel).await?,
        };
        let plan = container::Plan {
            session: &id,
            name: &name,
            image_id: &image_id,
            isolation: &recipe.isolation,
            user: &recipe.user,
            owner: &self.owner,
            supervisor: match &supervisor {
                Some(path) => container::Supervisor::Mounted(path),
                None => container::Supervisor::InImage,
            },
            timeout_secs,
        };
        (progress)(format!(
            "starting container {name} from {} on engine {}",
            recipe.image, engine.name
        ));
        let started = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled { what: "launch_session".into() }),
            started = self.start_container(&plan, engine, &recipe.chosen, &recipe.envs, progress) => started,
        };
        let (stream, container_id, servers) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = engine.podman.remove(std::slice::from_ref(&name)).await;
                let _ = std::fs::remove_file(container::cidfile(&name));
                return Err(e);
            }
        };
        let session = Arc::new(Session {
            id,
            engine: engine.clone(),
            container: name,
            container_id,
            image: recipe.image.clone(),
            image_id,
            isolation: container::as_seen(recipe.isolation.clone(), &stream.limits),
            lease_until: AtomicU64::new(container::from_now(timeout_secs)),
            stream,
            specs: recipe.chosen.clone(),
            servers,
            warnings: recipe.warnings.clone(),
            reaped: AtomicBool::new(false),
            calls: Arc::new(tokio::sync::Semaphore::new(super::policy::MAX_CALLS)),
            provisioned: std::sync::OnceLock::new(),
        });
        self.ready_or_ended(session, recipe).await
    }

    /// The supervised image of `recipe` on its engine (not the local one),
    /// shipped there unless it already has it.
    async fn ship(
        &self,
        recipe: &Recipe,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<String> {
        (progress)(format!(
            "making {} ready on engine {}",
            recipe.image, recipe.engine.name
        ));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled { what: "launch_session".into() }),
            shipped = self.shipper.onto(&recipe.engine, &recipe.image_id) => shipped,
        }
    }

    /// A started session, diagnosed; one none of whose servers is ready is
    /// nothing to talk to: it is shut down, leaving nothing behind, and the
    /// launch fails with every server's reason and the fix.
    async fn ready_or_ended(&self, session: Arc<Session>, recipe: &Recipe) -> Result<Arc<Session>> {
        let diagnoses = self
            .diagnose(&session.servers, &recipe.image_id, &recipe.isolation)
            .await;
        if !session
            .servers
            .values()
            .any(|c| c.status() == Status::Ready)
        {
            let reasons = no_server_ready(&session, &diagnoses);
            let _ = shut_down(std::slice::from_ref(&session)).await;
            return Err(Error::NoServerReady {
                image: recipe.image.clone(),
                session: session.id.clone(),
                reasons,
                fix: start_failure_fix(&diagnoses),
            });
        }
        Ok(session)
    }

    /// Start the container (`podman run` of the supervisor) and, in
    /// parallel, each server as a stream of it; one failing leaves the others.
    async fn start_container(
        &self,
        plan: &container::Plan<'_>,
        engine: &Engine,
        chosen: &BTreeMap<String, ServerSpec>,
        envs: &BTreeMap<String, BTreeMap<String, String>>,
        progress: &Progress,
    ) -> Result<Started> {
        let cidfile = container::cidfile(plan.name);
        let _ = std::fs::remove_file(&cidfile);
        let setup = self.setup(
            plan.session,
            plan.isolation,
            container::from_now(plan.timeout_secs),
        );
        let place = if engine.is_local() {
            "on this host".to_string()
        } else {
            format!("on engine `{}` ({})", engine.name, engine.podman.location())
        };
        let stream = SessionStream::start(
            &engine.podman,
            place,
            &container::run_args(plan),
            setup,
            Duration::from_secs(self.policy.handshake_secs),
        )
        .await;
        let written = std::fs::read_to_string(&cidfile);
        let _ = std::fs::remove_file(&cidfile);
        let stream = stream?;
        let container_id = Arc::new(std::sync::OnceLock::new());
        match written {
            Ok(id) => {
                let _ = container_id.set(id.trim().to_string());
            }
            // A remote engine writes no cidfile here: ask it in the
            // background (over ssh each call is a connection, ~200 ms).
            Err(_) if !engine.is_local() => {
                let (podman, name, id) = (
                    engine.podman.clone(),
                    plan.name.to_string(),
                    container_id.clone(),
                );
                tokio::spawn(async move {
                    if let Ok(Some(c)) = podman.container(&name).await {
                        let _ = id.set(c.id);
                    }
                });
            }
            Err(_) => {}
        }
        let servers = self
            .start_servers(
                plan.session,
                &stream,
                chosen,
                envs,
                plan.isolation,
                progress,
            )
            .await;
        Ok((stream, container_id, servers))
    }

    /// What the supervisor of `session` is told at the start (its lease
    /// and forwards), and the gate its connections go through.
    pub(super) fn setup(
        &self,
        session: &str,
        isolation: &super::Isolation,
        lease_until: u64,
    ) -> super::stream::Setup {
        super::stream::Setup {
            lease_until: Some(lease_until),
            forwards: isolation
                .forwards
                .iter()
                .map(|(listen, to)| mcpod_supervisor::protocol::Forward {
                    listen: *listen,
                    host: to.host(),
                    port: to.port,
                })
                .collect(),
            gate: (!isolation.egress.is_empty()).then(|| {
                Arc::new(crate::egress::gate::Gate::new(
                    session,
                    isolation.egress.clone(),
                    self.audit.clone(),
                ))
            }),
            // Given by the engine when the stream starts.
            handoff: None,
        }
    }
}

/// A started container: its stream, its ID, and each server.
/// The stream, the container's ID (once known), and the servers.
type Started = (
    Arc<SessionStream>,
    Arc<std::sync::OnceLock<String>>,
    BTreeMap<String, Arc<Child>>,
);

/// A launch under way, counted in `Sessions::launching` until it ends (the
/// session is in the map by then, or the launch failed).
struct LaunchSlot<'a>(&'a AtomicUsize);

impl Drop for LaunchSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a launch failed because its engine lacks the image it was told
/// to run (podman: "image not known").
fn image_gone(failed: &Error) -> bool {
    let said = failed.to_string().to_lowercase();
    said.contains("image not known") || said.contains("no such image")
}

/// An id-mapped mount maps its owner to the session's root: an image whose
/// `USER` is another would not write there as the owner. The user the
/// inspect that resolved the image read is used; only an image resolved
/// without one (a build's record) is inspected for it.
async fn runs_as_root(image: &Resolved) -> Result<()> {
    let user = match &image.user {
        Some(user) => user.clone(),
        None => crate::engine::podman::image_user(&image.id)
            .await?
            .unwrap_or_default(),
    };
    root_user(&image.id, &user)
}

/// Ok when `user` (an image's `USER`) is root; else the error that refuses
/// an id-mapped writable mount for `image`.
fn root_user(image: &str, user: &str) -> Result<()> {
    if matches!(user, "" | "0" | "root" | "0:0" | "root:root") {
        return Ok(());
    }
    Err(Error::invalid(
        "mount",
        image,
        format!(
            "the image runs its servers as user `{user}`, and a writable mount here is id-mapped to its directory's owner as the session's root (uid 0)"
        ),
        "mount it read-only, or launch an image without a USER (every image mcpod provisions runs as the session's root)",
    ))
}

#[cfg(test)]
#[path = "launch_tests.rs"]
mod tests;
