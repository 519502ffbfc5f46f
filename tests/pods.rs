//! Sessions as Kubernetes Pods: the manifest of a launch of the hello fixture
//! (validated against Kubernetes' OpenAPI schema by PyPI's
//! kubernetes-validate, which scripts/kubernetes-validate installs, and
//! checked field by field against the restricted Pod Security Standard),
//! secrets kept out of it, mounts refused, and the Pod run for real under
//! `podman kube play` with an MCP handshake through its session stream.
//! No cluster is reachable here.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcpod::session::{LaunchInput, MountRequest, Overrides, Policy, ServerOverride, Sessions};
use serde_json::{Value, json};

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.30.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn hello() -> String {
    tokio::task::spawn_blocking(common::hello_image)
        .await
        .expect("the hello image builds")
}

fn launch_of(image: &str) -> LaunchInput {
    serde_json::from_value(json!({"image": image})).expect("a launch input")
}

/// `mcpod ARGS...`: success, stdout, stderr.
fn mcpod(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(args)
        .output()
        .expect("mcpod runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kubernetes-validate (strict: unknown fields fail) of `text` as a file:
/// success, and what it said.
fn validate(text: &str) -> (bool, String) {
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("tempfile");
    std::fs::write(file.path(), text).expect("write");
    let out = Command::new(repo().join("scripts/kubernetes-validate"))
        .args(["--kubernetes-version", KUBERNETES, "--strict"])
        .arg(file.path())
        .output()
        .expect("scripts/kubernetes-validate runs (python3 and PyPI, or its venv, are needed)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The `---`-separated documents `mcpod pod` prints, each a JSON object.
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|doc| serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}")))
        .collect()
}

/// Every field of the restricted Pod Security Standard (and mcpod's own
/// mapping of a session's isolation) in `pod`, one by one.
fn assert_restricted(pod: &Value) {
    assert_eq!(pod["apiVersion"], "v1");
    assert_eq!(pod["kind"], "Pod");
    let name = pod["metadata"]["name"].as_str().expect("a name");
    let session = name.strip_prefix("mcpod-").expect("mcpod-<session>");
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "mcpod", "io.mcpod/session": session})
    );
    let annotations = &pod["metadata"]["annotations"];
    for key in [
        "io.mcpod/owner-pid",
        "io.mcpod/owner-start",
        "io.mcpod/boot-id",
        "io.mcpod/owner-host",
    ] {
        assert!(annotations[key].is_string(), "{key} in {annotations}");
    }
    // podman's kube play refuses an annotation value longer than a label's.
    for (key, value) in annotations.as_object().expect("annotations") {
        assert!(
            value.as_str().is_some_and(|v| v.len() <= 63),
            "{key}={value}"
        );
    }
    let spec = &pod["spec"];
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["activeDeadlineSeconds"], 3600, "the default lease");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_eq!(spec[host], false, "{host}");
    }
    let pod_security = &spec["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert_eq!(pod_security["runAsUser"], 65534);
    assert_eq!(pod_security["runAsGroup"], 65534);
    assert_eq!(
        pod_security["seccompProfile"],
        json!({"type": "RuntimeDefault"})
    );
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    assert!(spec.get("initContainers").is_none());
    assert!(spec.get("ephemeralContainers").is_none());
    let c = &containers[0];
    assert_eq!(c["command"], json!(["/.mcpod/supervisor"]));
    assert!(c.get("args").is_none());
    assert_eq!(c["stdin"], true);
    assert_eq!(c["stdinOnce"], false);
    assert_eq!(c["tty"], false);
    assert!(c.get("env").is_none() && c.get("envFrom").is_none(), "{c}");
    assert!(c.get("ports").is_none(), "{c}");
    let security = &c["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["privileged"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"], json!({"drop": ["ALL"]}));
    let expected = json!({"memory": "512Mi", "cpu": "1000m", "ephemeral-storage": "128Mi"});
    assert_eq!(c["resources"]["limits"], expected);
    assert_eq!(c["resources"]["requests"], expected);
    // The writable paths: emptyDirs in memory, of the session's tmpfs sizes.
    let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            assert!(m.get("subPath").is_none(), "{m}");
            (
                m["mountPath"].as_str().expect("mountPath"),
                m["name"].as_str().expect("name"),
            )
        })
        .collect();
    assert_eq!(mounts.keys().copied().collect::<Vec<_>>(), ["/run", "/tmp"]);
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 2);
    for (path, size) in [("/run", "16Mi"), ("/tmp", "64Mi")] {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mounts[path])
            .unwrap_or_else(|| panic!("a volume for {path}"));
        assert_eq!(
            volume["emptyDir"],
            json!({"medium": "Memory", "sizeLimit": size}),
            "{path}"
        );
        // Only emptyDirs: the restricted standard allows no hostPath.
        assert_eq!(volume.as_object().expect("a volume").len(), 2, "{volume}");
        assert!(
            mounts[path].starts_with(&format!("{session}-")),
            "unique to the session: {}",
            mounts[path]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manifest_of_a_launch_validates_and_is_restricted() {
    let image = hello().await;
    let (ok, out, err) = mcpod(&["pod", &image]);
    assert!(ok, "mcpod pod: {err}");
    let docs = documents(&out);
    assert_eq!(docs.len(), 2, "{out}");
    let (pod, policy) = (&docs[0], &docs[1]);
    assert_restricted(pod);
    let container = &pod["spec"]["containers"][0];
    // No registry: the supervised image in this host's storage, never pulled.
    assert_eq!(container["imagePullPolicy"], "Never");
    let tag = container["image"].as_str().expect("image");
    assert!(tag.starts_with("localhost/mcpod-session:"), "{tag}");
    assert!(
        err.contains("only an engine that shares this storage"),
        "{err}"
    );
    // `--network none`: a NetworkPolicy that denies the Pod everything.
    let session = pod["metadata"]["labels"]["io.mcpod/session"].clone();
    assert_eq!(policy["kind"], "NetworkPolicy");
    assert_eq!(policy["metadata"]["name"], pod["metadata"]["name"]);
    assert_eq!(
        policy["spec"],
        json!({"podSelector": {"matchLabels": {"io.mcpod/session": session}},
               "policyTypes": ["Ingress", "Egress"]})
    );

    let (valid, said) = validate(&out);
    assert!(valid, "{said}");
    let pod_name = pod["metadata"]["name"].as_str().expect("name");
    for resource in [
        format!("pod/{pod_name}"),
        format!("networkpolicy/{pod_name}"),
    ] {
        assert!(
            said.contains(&format!(
                "passed for resource {resource} against version 1.30"
            )),
            "{said}"
        );
    }
    // Strict: a field Kubernetes does not know fails, so the pass means something.
    let mut wrong = pod.clone();
    wrong["spec"]["containers"][0]["securityContext"]["runAsRoot"] = json!(false);
    let (valid, said) = validate(&wrong.to_string());
    assert!(!valid && said.contains("runAsRoot"), "{said}");

    // The JSON report carries the same manifest, and the session's grant.
    let (ok, report, err) = mcpod(&["pod", &image, "--json"]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&report).expect("JSON");
    assert_restricted(&report["manifest"]);
    assert_eq!(report["network_policy"]["kind"], "NetworkPolicy");
    assert_eq!(report["launched_image"], image);
    assert_eq!(report["isolation"]["network"], "none");
    assert_eq!(
        report["isolation"]["user"],
        "runAsUser=65534 runAsGroup=65534"
    );
    assert_eq!(
        report["servers"]["hello"]["command"],
        json!(["/bin/hello-server"])
    );
    // A granted network: no NetworkPolicy.
    let (ok, out, err) = mcpod(&["pod", &image, "--network", "--allow-network"]);
    assert!(ok, "{err}");
    let docs = documents(&out);
    assert_eq!(docs.len(), 1, "{out}");
    assert_eq!(
        docs[0]["metadata"]["annotations"]["io.mcpod/network"],
        "egress"
    );
}

/// A launch whose server takes a secret (a `${NAME}` reference the operator
/// allowed, with its value in the launch) and a literal value.
fn with_secret(image: &str, secret: &str, literal: &str) -> (Policy, LaunchInput) {
    let policy = Policy {
        allowed_env: vec!["MCPOD_POD_SECRET".into()],
        ..Policy::default()
    };
    let mut input = launch_of(image);
    input.overrides = Overrides::PerServer(BTreeMap::from([(
        "hello".into(),
        ServerOverride {
            env: BTreeMap::from([
                ("TOKEN".into(), "${MCPOD_POD_SECRET}".into()),
                ("PLAIN".into(), literal.into()),
            ]),
            ..Default::default()
        },
    )]));
    input.env.insert("MCPOD_POD_SECRET".into(), secret.into());
    (policy, input)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_env_value_is_in_the_manifest() {
    let image = hello().await;
    let secret = format!("secret-{}", mcpod::engine::nonce());
    let literal = format!("literal-{}", mcpod::engine::nonce());
    let (policy, input) = with_secret(&image, &secret, &literal);
    let sessions = Sessions::new(policy).expect("sessions");
    let pod = sessions
        .pod(input, common::quiet(), Default::default())
        .await
        .expect("a pod");
    let everything = [
        pod.documents(),
        serde_json::to_string(&pod).expect("the report serializes"),
    ];
    for text in &everything {
        assert!(!text.contains(&secret), "the secret leaked: {text}");
        assert!(!text.contains(&literal), "an env value leaked: {text}");
    }
    // The variables are named, for the operator to see; their values travel
    // over the session stream when the servers start.
    assert_eq!(pod.servers["hello"].env, ["PLAIN", "TOKEN"]);
    assert_restricted(&pod.manifest);
    // A name the operator did not allow is refused, as a launch refuses it.
    let (_, mut input) = with_secret(&image, &secret, &literal);
    input.env.insert("OTHER".into(), "x".into());
    let refused = Sessions::new(Policy::default())
        .expect("sessions")
        .pod(input, common::quiet(), Default::default())
        .await
        .expect_err("not allowed");
    assert!(refused.to_string().contains("--allow-env"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mount_is_refused() {
    let image = hello().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_string_lossy().to_string();
    let mut input = launch_of(&image);
    input.mounts.push(MountRequest {
        source: root.clone(),
        target: "/data".into(),
        read_only: true,
    });
    let policy = Policy {
        mount_roots: vec![root.parse().expect("a mount root")],
        ..Policy::default()
    };
    let refused = Sessions::new(policy)
        .expect("sessions")
        .pod(input, common::quiet(), Default::default())
        .await
        .expect_err("a mount");
    let text = refused.to_string();
    assert!(
        text.contains(&root) && text.contains("a Pod cannot mount the operator's host paths"),
        "{text}"
    );
    // The command line says the same, and prints no manifest.
    let mount = format!("{root}:/data");
    let (ok, out, err) = mcpod(&["pod", &image, "--allow-mount", &root, "--mount", &mount]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("a Pod cannot mount"), "{err}");
}

/// Removes the Pod when dropped, however the test ends.
struct PodCleanup(String);

impl Drop for PodCleanup {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["pod", "rm", "--force", "--ignore", "--time", "0", &self.0])
            .output();
    }
}

/// What podman has whose name contains `needle`: pods, containers, volumes.
fn leftovers(needle: &str) -> Vec<String> {
    let mut all = Vec::new();
    for args in [
        &["pod", "ps", "--format", "{{.Name}}"][..],
        &["ps", "--all", "--format", "{{.Names}}"],
        &["volume", "ls", "--format", "{{.Name}}"],
    ] {
        all.extend(
            common::podman_lines(args)
                .into_iter()
                .filter(|n| n.contains(needle)),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pod_runs_under_kube_play_and_answers_mcp() {
    let image = hello().await;
    let secret = format!("secret-{}", mcpod::engine::nonce());
    let (policy, input) = with_secret(&image, &secret, "plain");
    let sessions = Sessions::new(policy).expect("sessions");
    let pod = sessions
        .pod(input, common::quiet(), Default::default())
        .await
        .expect("a pod");
    play_and_check(&sessions, &pod, &secret).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_registry_the_pod_pulls_its_image_by_digest() {
    let image = hello().await;
    let registry = common::engines::engines().registry;
    let secret = format!("secret-{}", mcpod::engine::nonce());
    let (mut policy, input) = with_secret(&image, &secret, "plain");
    policy.registry = Some(mcpod::engine::registry::Registry::parse(&registry).expect("registry"));
    let sessions = Sessions::new(policy).expect("sessions");
    let pod = sessions
        .pod(input, common::quiet(), Default::default())
        .await
        .expect("a pod");
    let container = &pod.manifest["spec"]["containers"][0];
    let reference = container["image"].as_str().expect("image");
    assert!(
        reference.starts_with(&format!("{registry}/mcpod-session@sha256:")),
        "{reference}"
    );
    assert_eq!(reference, pod.image);
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert!(
        !pod.warnings.iter().any(|w| w.contains("no registry")),
        "{:?}",
        pod.warnings
    );
    let (valid, said) = validate(&pod.documents());
    assert!(valid, "{said}");
    // This storage has the image by ID, not by that name: `kube play` pulls
    // it from the registry by digest, as a node would.
    play_and_check(&sessions, &pod, &secret).await;
}

/// Play `pod` (its hello server takes `secret` as TOKEN) under the local
/// podman, check what runs and what its server answers through the session
/// stream, remove it, and check that nothing is left.
async fn play_and_check(sessions: &Sessions, pod: &mcpod::session::pod::Pod, secret: &str) {
    let _cleanup = PodCleanup(pod.name.clone());
    let played = sessions.play(pod).await.expect("the pod plays");

    // What came before mcpod spoke was dropped (at least podman's line, the
    // container's name), as an attach to a running Pod misses it.
    assert!(
        played.skipped > played.container.len(),
        "{}",
        played.skipped
    );
    // podman made the container the manifest says.
    let inspect = common::podman_lines(&[
        "container",
        "inspect",
        "--format",
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Memory}} {{.HostConfig.LogConfig.Type}} {{.Config.Labels}}",
        &played.container,
    ])
    .join(" ");
    assert!(
        inspect.starts_with("65534:65534 true 536870912 passthrough "),
        "{inspect}"
    );
    assert!(
        inspect.contains(&format!("io.mcpod/session:{}", pod.session)),
        "{inspect}"
    );

    // The MCP handshake, through the session stream.
    let hello = &played.servers["hello"];
    assert!(
        hello.is_ready(),
        "{:?}; the supervisor said: {}",
        hello.status(),
        played.log.tail_text(20)
    );
    assert_eq!(
        hello.handshake.as_ref().map(|h| h.name.as_str()),
        Some("hello-server")
    );
    let tools: Vec<String> = hello.tools().iter().map(|t| t.name.to_string()).collect();
    for tool in ["greet", "add", "whoami"] {
        assert!(tools.iter().any(|t| t == tool), "{tool} in {tools:?}");
    }
    let sum = hello
        .call(
            "add",
            json!({"a": 40, "b": 2}).as_object().cloned(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("add");
    assert_eq!(
        sum.structured_content.as_ref().map(|s| s["sum"].clone()),
        Some(json!(42)),
        "{sum:?}"
    );
    // What the server sees: the Pod's user, no capabilities, no new
    // privileges, a read-only root, only loopback, the memory limit; and
    // the secret, which came over the stream and not through the manifest.
    let who = hello
        .call("whoami", None, Default::default(), Default::default())
        .await
        .expect("whoami");
    let who = who.structured_content.expect("structured");
    assert!(
        who["uid"].as_str().is_some_and(|u| u.starts_with("65534")),
        "{who}"
    );
    assert_eq!(who["cap_eff"], "0000000000000000", "{who}");
    assert_eq!(who["no_new_privs"], "1", "{who}");
    assert_eq!(who["root_writable"], false, "{who}");
    assert_eq!(who["network_interfaces"], json!(["lo"]), "{who}");
    assert_eq!(who["memory_max"], "536870912", "{who}");
    let env: Vec<&str> = who["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&format!("TOKEN={secret}").as_str()), "{env:?}");
    assert!(!pod.documents().contains(secret));

    // Nothing is left: no pod, no container, no volume of the session.
    played.remove().await.expect("removed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers(&pod.session);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
