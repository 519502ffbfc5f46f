"""The MCP clients' own CLIs against the real mcpod, registered the way a user does it: with
`mcpod config --client X --write` into the client's own file, approved or trusted the way each
client documents, then the client's `mcp list` / `mcp get`, which start mcpod and connect.
The shared-mode tests (`*_http_*`) register `mcpod config --client X --url URL` instead, which
points the client at one running `mcpod serve --listen` with its token in the environment.

The CLIs (pinned in clients/package.json, with node 22 from npm) are installed by
tests/interop/run into clients/node_modules; MCPOD_CLIENTS_BIN names its .bin. Each test gets
its own HOME (and CODEX_HOME), so nothing of the machine's own client config is read or written,
and a PATH with `mcpod` on it (a project entry runs `mcpod` by name). No model is called: these
commands only read the config and connect to the servers. They do not depend on the Python
SDK, so tests/interop/run runs them once, in the first venv."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mcpod_client import HERE, MCPOD, REPO, TIMEOUT, podman_session_containers, report, serving_http

CLIENTS_BIN = Path(os.environ.get("MCPOD_CLIENTS_BIN", HERE / "clients" / "node_modules" / ".bin"))

pytestmark = pytest.mark.skipif(
    not (CLIENTS_BIN / "claude").exists(), reason=f"{CLIENTS_BIN} missing: run tests/interop/run (npm ci of clients/)"
)


def version_of(package: str) -> str:
    path = CLIENTS_BIN.parent / package / "package.json"
    return json.loads(path.read_text())["version"]


@pytest.fixture
def user(tmp_path):
    """A fresh user: HOME, a project folder, and `mcpod` on PATH before the clients' node 22."""
    home = tmp_path / "home"
    project = tmp_path / "project"
    bin_dir = tmp_path / "bin"
    for d in (home, project, bin_dir):
        d.mkdir()
    (bin_dir / "mcpod").symlink_to(MCPOD)
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([str(bin_dir), str(CLIENTS_BIN), os.environ.get("PATH", "")]),
        "CI": "true",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "CODEX_HOME": str(home / ".codex"),
        "MCPOD_STATE_DIR": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    # podman needs nothing else; these tests start no container.
    return {"home": home, "project": project, "env": env}


def run(user, *command: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        list(command),
        cwd=cwd or user["project"],
        env=user["env"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done


def mcpod_config(user, *args: str) -> subprocess.CompletedProcess:
    return run(user, "mcpod", "config", *args)


def test_claude_code_connects_from_the_mcp_json_mcpod_config_wrote(user):
    project = user["project"]
    mcpod_config(user, "--client", "claude-code", "--write")
    entry = json.loads((project / ".mcp.json").read_text())["mcpServers"]["mcpod"]
    assert entry == {"type": "stdio", "command": "mcpod", "args": ["serve", "--root", "."]}, entry

    # Unapproved, Claude Code does not start it: the approval below is what connects it.
    pending = run(user, "claude", "mcp", "get", "mcpod").stdout
    assert "Pending approval" in pending, pending

    # The documented non-interactive approval: the folder trusted (what the trust prompt stores in
    # ~/.claude.json) and the server approved in the project's uncommitted local settings.
    claude_json = user["home"] / ".claude.json"
    state = json.loads(claude_json.read_text()) if claude_json.exists() else {}
    state.setdefault("projects", {})[str(project)] = {"hasTrustDialogAccepted": True}
    claude_json.write_text(json.dumps(state))
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.local.json").write_text(json.dumps({"enabledMcpjsonServers": ["mcpod"]}))

    listed = run(user, "claude", "mcp", "list").stdout
    assert re.search(r"^mcpod: mcpod serve --root \. - ✔ Connected$", listed, re.M), listed
    got = run(user, "claude", "mcp", "get", "mcpod").stdout
    assert "Status: ✔ Connected" in got and "Scope: Project config" in got, got
    report("claude mcp list / get: mcpod ✔ Connected from .mcp.json", who=f"claude-code {version_of('@anthropic-ai/claude-code')}")


def test_codex_loads_the_merged_config(user):
    codex_home = user["home"] / ".codex"
    codex_home.mkdir()
    config = codex_home / "config.toml"
    # The user's own file, with the entry spelled another valid way and keys of their own in it:
    # a line-by-line merge appended a second [mcp_servers.mcpod], which Codex refuses to load.
    config.write_text(
        'model = "o3"  # mine\n\n'
        '[mcp_servers."mcpod"]\ncommand = "old"\nenabled = true\ntool_timeout_sec = 1200\n\n'
        '[mcp_servers.other]\ncommand = "true"\n'
    )
    for _ in range(2):
        mcpod_config(user, "--client", "codex", "--write")
    listed = json.loads(run(user, "codex", "mcp", "list", "--json").stdout)
    servers = {s["name"]: s for s in listed}
    assert set(servers) == {"mcpod", "other"}, listed
    mcpod = servers["mcpod"]
    assert mcpod["enabled"] is True and mcpod["tool_timeout_sec"] == 1200, mcpod
    assert mcpod["transport"]["command"] == str(MCPOD.resolve()) and mcpod["transport"]["args"] == ["serve"], mcpod
    assert config.read_text().startswith('model = "o3"  # mine\n'), config.read_text()

    # A fresh user's file gets the entry with mcpod's tool timeout (a cold build outlasts 60 s).
    config.unlink()
    mcpod_config(user, "--client", "codex", "--write")
    fresh = {s["name"]: s for s in json.loads(run(user, "codex", "mcp", "list", "--json").stdout)}
    assert fresh["mcpod"]["tool_timeout_sec"] == 900, fresh
    version = run(user, "codex", "--version").stdout.strip()
    report(f"codex mcp list --json loads the merged config: {json.dumps(mcpod)}", who=version)


def test_gemini_connects_in_a_trusted_folder(user):
    project = user["project"]
    mcpod_config(user, "--client", "gemini", "--write")
    entry = json.loads((project / ".gemini" / "settings.json").read_text())["mcpServers"]["mcpod"]
    assert entry["command"] == "mcpod" and entry["args"] == ["serve", "--root", "."], entry

    untrusted = run(user, "gemini", "mcp", "list")
    assert "Disabled" in untrusted.stdout + untrusted.stderr, untrusted

    # The documented trust: the folder in ~/.gemini/trustedFolders.json.
    (user["home"] / ".gemini").mkdir(exist_ok=True)
    (user["home"] / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    listed = run(user, "gemini", "mcp", "list")
    out = listed.stdout + listed.stderr
    assert re.search(r"mcpod: mcpod serve --root \. \(stdio\) - Connected", out), out
    report("gemini mcp list: mcpod Connected from .gemini/settings.json", who=f"gemini-cli {version_of('@google/gemini-cli')}")


@pytest.fixture
def shared(user, tmp_path):
    """One `mcpod serve --listen 127.0.0.1:0` for the user (it starts no container until a tool
    launches a session) and a token made for it, which the client gets as MCPOD_TOKEN."""
    with serving_http(user["env"], user["project"], tmp_path / "serve.log") as url:
        token = run(user, "mcpod", "token", "create", "alice").stdout.strip()
        assert token.startswith("mcpod_"), token
        yield {"url": url, "token": token}


def with_token(user, token: str, name: str = "MCPOD_TOKEN") -> dict:
    """The user's environment with the token in `name`, as the client would start."""
    return {**user, "env": {**user["env"], name: token}}


def test_claude_code_http_entry_connects_with_the_token_from_the_environment(user, shared):
    project, url, token = user["project"], shared["url"], shared["token"]
    mcpod_config(user, "--client", "claude-code", "--url", url, "--write")
    text = (project / ".mcp.json").read_text()
    assert token not in text, text
    entry = json.loads(text)["mcpServers"]["mcpod"]
    assert entry == {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${MCPOD_TOKEN}"}}, entry

    # The same approval as the stdio entry: the folder trusted and the server approved.
    claude_json = user["home"] / ".claude.json"
    state = json.loads(claude_json.read_text()) if claude_json.exists() else {}
    state.setdefault("projects", {})[str(project)] = {"hasTrustDialogAccepted": True}
    claude_json.write_text(json.dumps(state))
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.local.json").write_text(json.dumps({"enabledMcpjsonServers": ["mcpod"]}))

    got = run(with_token(user, token), "claude", "mcp", "get", "mcpod").stdout
    assert "Status: ✔ Connected" in got and "Type: http" in got and f"URL: {url}" in got, got
    assert "Authorization: Bearer ${MCPOD_TOKEN}" in got and token not in got, got
    # The header is what authenticates: another value is refused by mcpod.
    wrong = run(with_token(user, "mcpod_" + "0" * 64), "claude", "mcp", "list").stdout
    assert "Failed to connect" in wrong and "401" in wrong, wrong
    report(f"claude mcp get: mcpod ✔ Connected over HTTP ({url}), Bearer ${{MCPOD_TOKEN}}", who=f"claude-code {version_of('@anthropic-ai/claude-code')}")


def test_codex_http_entry_replaces_the_stdio_one(user):
    # `codex mcp list` reads the config without connecting, so no server is needed here.
    url = "http://127.0.0.1:8765/mcp"
    mcpod_config(user, "--client", "codex", "--write")
    mcpod_config(user, "--client", "codex", "--url", url, "--token-env", "TEAM_TOKEN", "--write")
    config = (user["home"] / ".codex" / "config.toml").read_text()
    assert "command" not in config and "args" not in config, config
    listed = {s["name"]: s for s in json.loads(run(user, "codex", "mcp", "list", "--json").stdout)}
    mcpod = listed["mcpod"]
    assert mcpod["transport"]["type"] == "streamable_http", mcpod
    assert mcpod["transport"]["url"] == url and mcpod["transport"]["bearer_token_env_var"] == "TEAM_TOKEN", mcpod
    assert mcpod["tool_timeout_sec"] == 900 and mcpod["enabled"] is True, mcpod
    got = run(user, "codex", "mcp", "get", "mcpod").stdout
    assert "transport: streamable_http" in got and "bearer_token_env_var: TEAM_TOKEN" in got, got

    # And back: the stdio entry drops what only HTTP has (Codex refuses a table that mixes them).
    mcpod_config(user, "--client", "codex", "--write")
    back = {s["name"]: s for s in json.loads(run(user, "codex", "mcp", "list", "--json").stdout)}
    assert back["mcpod"]["transport"]["type"] == "stdio", back
    version = run(user, "codex", "--version").stdout.strip()
    report(f"codex mcp list --json: mcpod streamable_http {url}, bearer_token_env_var TEAM_TOKEN", who=version)


def test_gemini_http_entry_connects_in_a_trusted_folder(user, shared):
    project, url, token = user["project"], shared["url"], shared["token"]
    mcpod_config(user, "--client", "gemini", "--url", url, "--write")
    text = (project / ".gemini" / "settings.json").read_text()
    assert token not in text, text
    entry = json.loads(text)["mcpServers"]["mcpod"]
    assert entry == {"httpUrl": url, "headers": {"Authorization": "Bearer ${MCPOD_TOKEN}"}, "timeout": 900000}, entry

    (user["home"] / ".gemini").mkdir(exist_ok=True)
    (user["home"] / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    listed = run(with_token(user, token), "gemini", "mcp", "list")
    out = listed.stdout + listed.stderr
    assert f"mcpod: {url} (http) - Connected" in out and token not in out, out
    refused = run(with_token(user, "mcpod_" + "0" * 64), "gemini", "mcp", "list")
    assert f"mcpod: {url} (http) - Disconnected" in refused.stdout + refused.stderr, refused
    report(f"gemini mcp list: mcpod Connected over HTTP ({url}), Bearer ${{MCPOD_TOKEN}}", who=f"gemini-cli {version_of('@google/gemini-cli')}")


def inspector(user, *args: str) -> subprocess.CompletedProcess:
    return run(user, "mcp-inspector", "--cli", *args, cwd=REPO, check=False)


def test_inspector_strict_reports_no_schema_warnings(user):
    done = inspector(user, "--strict", str(MCPOD), "serve", "--root", str(REPO), "--method", "tools/list")
    assert done.returncode == 0, done
    tools = json.loads(done.stdout)["tools"]
    warnings = [l for l in done.stderr.splitlines() if l.startswith(("Warning:", "Error:", "Schema portability"))]
    assert warnings == [], done.stderr
    report(f"--strict tools/list: {len(tools)} tools, 0 schema warnings", who=f"inspector {version_of('@modelcontextprotocol/inspector')}")


def test_inspector_validates_build_image_output_without_format_warnings(user):
    done = inspector(
        user, str(MCPOD), "serve", "--root", str(REPO),
        "--method", "tools/call", "--tool-name", "build_image",
        "--tool-arg", "name=localhost/mcpod-hello", "context=examples/hello",
    )
    assert done.returncode == 0, done
    result = json.loads(done.stdout)
    assert result.get("isError") is False, result
    formats = [l for l in done.stderr.splitlines() if "format" in l.lower()]
    assert formats == [], done.stderr
    report(f"build_image: {result['structuredContent']['tag']}, 0 format warnings", who=f"inspector {version_of('@modelcontextprotocol/inspector')}")


def hello_tag(user) -> str:
    """examples/hello built through `mcpod build` (a cache hit once built): its tag."""
    built = run(user, "mcpod", "build", "--name", "localhost/mcpod-hello", "--context", "examples/hello", "--json", cwd=REPO)
    return json.loads(built.stdout)["tag"]


def test_inspector_over_http_with_the_bearer_token(user, shared):
    """The Inspector CLI connected to `mcpod serve --listen` with `--transport http` and the token in
    `--header`: tools/list, a session launched and its tool called by exported name, list_sessions
    naming it, each an Inspector run of its own (an MCP session each; the session is the token's).
    Without the header, or with another token, mcpod answers 401 and the Inspector stops."""
    url, token = shared["url"], shared["token"]

    def over_http(*args: str, auth: str | None = f"Authorization: Bearer {token}") -> subprocess.CompletedProcess:
        header = ["--header", auth] if auth else []
        return inspector(user, url, "--transport", "http", *header, *args)

    def answer(*args: str) -> dict:
        done = over_http(*args)
        assert done.returncode == 0, done
        return json.loads(done.stdout)

    tools = {t["name"] for t in answer("--method", "tools/list")["tools"]}
    assert {"launch_session", "list_sessions", "stop_session"} <= tools, tools
    launched = answer("--method", "tools/call", "--tool-name", "launch_session", "--tool-arg", f"image={hello_tag(user)}")
    assert launched.get("isError") is False, launched
    session = launched["structuredContent"]["session"]
    try:
        greet = answer("--method", "tools/call", "--tool-name", f"{session}_hello__greet", "--tool-arg", "name=inspector")
        assert greet["content"][0]["text"] == "Hello, inspector!", greet
        listed = answer("--method", "tools/call", "--tool-name", "list_sessions")
        assert [s["session"] for s in listed["structuredContent"]["sessions"]] == [session], listed
        assert f"{session}_hello__greet" in {t["name"] for t in answer("--method", "tools/list")["tools"]}
    finally:
        stopped = answer("--method", "tools/call", "--tool-name", "stop_session", "--tool-arg", f"session={session}")
    assert stopped["structuredContent"]["stopped"] is True, stopped
    assert podman_session_containers(session) == [], session

    for auth in (None, "Authorization: Bearer mcpod_" + "0" * 64):
        refused = over_http("--method", "tools/list", auth=auth)
        out = refused.stdout + refused.stderr
        # mcpod's 401 carries `WWW-Authenticate: Bearer`: the Inspector takes it as a server that
        # needs authorization and, with no TTY for an OAuth flow, exits with `auth_required`.
        assert refused.returncode != 0 and '"code":"auth_required"' in out, refused
        assert token not in out, out
    report(
        f"--transport http --header 'Authorization: Bearer …': tools/list ({len(tools)} tools), launch_session, "
        f"{session}_hello__greet, list_sessions, stop_session; auth_required (401) without it",
        who=f"inspector {version_of('@modelcontextprotocol/inspector')}",
    )
