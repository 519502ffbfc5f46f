//! `hello-server`: the repo's own fixture MCP server. Statically linked into the
//! `examples/hello` image (FROM scratch) for the demo and for fast plumbing tests.
//!
//! Tools: `greet`, `add` (structured output), `slow` (progress, cancellation),
//! `crash` (exits mid-call), `whoami` (what the process sees of its sandbox).
//! Flags for fault tests: `--exit-at-start CODE`, `--never-initialize`.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::{Json, Peer, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Hello {
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, JsonSchema)]
struct GreetInput {
    /// Who to greet.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct AddInput {
    a: i64,
    b: i64,
}

#[derive(Serialize, JsonSchema)]
struct Sum {
    sum: i64,
}

#[derive(Deserialize, JsonSchema)]
struct SlowInput {
    /// How many steps of 100 ms to take.
    steps: u32,
}

#[derive(Serialize, JsonSchema)]
struct SlowOutput {
    completed_steps: u32,
}

#[derive(Deserialize, JsonSchema)]
struct CrashInput {
    /// The exit code.
    code: i32,
}

#[derive(Serialize, JsonSchema)]
struct Sandbox {
    uid: String,
    /// /proc/self/uid_map on one line: container uid, host uid, count (repeated per range).
    uid_map: String,
    cap_eff: String,
    no_new_privs: String,
    network_interfaces: Vec<String>,
    root_writable: bool,
    pids_max: String,
    memory_max: String,
    /// The process's environment, `NAME=VALUE` each.
    env: Vec<String>,
}

#[tool_router]
impl Hello {
    #[tool(
        description = "Say hello to someone.",
        annotations(read_only_hint = true)
    )]
    async fn greet(&self, Parameters(input): Parameters<GreetInput>) -> String {
        format!("Hello, {}!", input.name)
    }

    #[tool(description = "Add two integers.", annotations(read_only_hint = true))]
    async fn add(&self, Parameters(input): Parameters<AddInput>) -> Json<Sum> {
        Json(Sum {
            sum: input.a.saturating_add(input.b),
        })
    }

    #[tool(description = "Take `steps` steps of 100 ms, reporting progress; stops when cancelled.")]
    async fn slow(
        &self,
        Parameters(input): Parameters<SlowInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> Result<Json<SlowOutput>, String> {
        for step in 1..=input.steps {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                _ = cancel.cancelled() => {
                    eprintln!("hello-server: slow cancelled at step {step}");
                    return Err(format!("cancelled at step {step}"));
                }
            }
            if let Some(token) = meta.get_progress_token() {
                let param = ProgressNotificationParam::new(token, f64::from(step))
                    .with_total(f64::from(input.steps))
                    .with_message(format!("step {step} of {}", input.steps));
                let _ = peer.notify_progress(param).await;
            }
        }
        Ok(Json(SlowOutput {
            completed_steps: input.steps,
        }))
    }

    #[tool(description = "Exit the server process with `code` (a crash mid-call).")]
    async fn crash(&self, Parameters(input): Parameters<CrashInput>) -> String {
        eprintln!(
            "hello-server: crashing with exit code {} on request",
            input.code
        );
        std::process::exit(input.code)
    }

    #[tool(
        description = "Report what this process sees of its sandbox: uid, capabilities, no_new_privs, network interfaces, whether / is writable, pids and memory limits, and its environment.",
        annotations(read_only_hint = true)
    )]
    async fn whoami(&self) -> Json<Sandbox> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let network_interfaces = std::fs::read_dir("/sys/class/net")
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let root_writable = std::fs::write("/.mcpod-write-probe", b"x").is_ok();
        // cgroup v2 paths first, then v1.
        let read = |paths: &[&str]| {
            paths
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let uid_map = read(&["/proc/self/uid_map"]);
        Json(Sandbox {
            uid: field("Uid:"),
            uid_map: uid_map.split_whitespace().collect::<Vec<_>>().join(" "),
            cap_eff: field("CapEff:"),
            no_new_privs: field("NoNewPrivs:"),
            network_interfaces,
            root_writable,
            pids_max: read(&["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"]),
            memory_max: read(&[
                "/sys/fs/cgroup/memory.max",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ]),
            env: std::env::vars_os()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect(),
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("hello-server", env!("CARGO_PKG_VERSION")),
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--exit-at-start") {
        let code = args.get(i + 1).and_then(|c| c.parse().ok()).unwrap_or(3);
        eprintln!("hello-server: exiting at start with code {code}, as asked");
        std::process::exit(code);
    }
    if args.iter().any(|a| a == "--never-initialize") {
        eprintln!("hello-server: reading stdin and never answering, as asked");
        let mut sink = tokio::io::sink();
        tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await?;
        return Ok(());
    }
    let server = Hello {
        tool_router: Hello::tool_router(),
    };
    let running = server.serve(rmcp::transport::io::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
