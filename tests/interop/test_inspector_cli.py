"""The MCP Inspector CLI (pinned in package.json, installed into tests/interop/node_modules by
tests/interop/run) against the real mcpod binary: `--cli <mcpod serve> --method ...`.

They do not depend on the Python SDK, so tests/interop/run runs them once, in the first venv."""

import json
import os
import subprocess

import pytest

from mcpod_client import HERE, MCPOD, META_TOOLS, REPO, TIMEOUT, report, serving_http

INSPECTOR = HERE / "node_modules" / ".bin" / "mcp-inspector"

pytestmark = pytest.mark.skipif(not INSPECTOR.exists(), reason=f"{INSPECTOR} missing: run tests/interop/run (npm ci)")


def inspector(*args: str) -> dict:
    """Run the Inspector CLI on `mcpod serve --root <repo>`; its JSON output."""
    command = [str(INSPECTOR), "--cli", str(MCPOD), "serve", "--root", str(REPO), *args]
    env = dict(os.environ, MCPOD_LOG="warn")
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON: {done.stdout!r}\nstderr: {done.stderr}") from None


def inspector_version() -> str:
    package = HERE / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    return json.loads(package.read_text())["version"]


def test_inspector_lists_the_meta_tools():
    listed = inspector("--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert META_TOOLS <= set(tools), f"missing: {META_TOOLS - set(tools)}"
    assert tools["inspect_labels"]["inputSchema"]["required"] == ["reference"]
    assert "outputSchema" in tools["build_image"]
    report(f"tools/list: {', '.join(sorted(tools))}", who=f"inspector {inspector_version()}")


def test_inspector_builds_and_inspects_hello():
    built = inspector(
        "--method", "tools/call", "--tool-name", "build_image",
        "--tool-arg", "name=localhost/mcpod-hello", "context=examples/hello",
    )
    assert built.get("isError") is False, built
    tag = built["structuredContent"]["tag"]
    assert tag.startswith("localhost/mcpod-hello:"), built

    inspected = inspector("--method", "tools/call", "--tool-name", "inspect_labels", "--tool-arg", f"reference={tag}")
    assert inspected.get("isError") is False, inspected
    s = inspected["structuredContent"]
    assert s["reference"] == tag, s
    assert s["servers_source"] == "io.mcpod.servers", s
    hello = s["servers"]["hello"]
    assert hello["command"] == ["/bin/hello-server"], s["servers"]
    assert hello["call_timeout_secs"] == 60 and hello["description"], hello
    assert json.loads(inspected["content"][0]["text"]) == s, "the text block is the same JSON"
    report(f"inspect_labels {tag}: servers {json.dumps(s['servers'])}", who=f"inspector {inspector_version()}")


def test_inspector_takes_the_prompt_resource_and_template_lists():
    """One mcpod per Inspector call, so no session is running: the lists are mcpod's own (no
    prompts or templates, no resources), and the Inspector accepts each answer's shape."""
    assert inspector("--method", "prompts/list")["prompts"] == []
    assert inspector("--method", "resources/list")["resources"] == []
    assert inspector("--method", "resources/templates/list")["resourceTemplates"] == []
    report("prompts/list, resources/list, resources/templates/list: accepted", who=f"inspector {inspector_version()}")


def test_inspector_over_http_cannot_send_the_token_and_is_refused(tmp_path):
    """Inspector 0.15.0's CLI speaks Streamable HTTP (`--transport http`) but has no option for a
    header, so it cannot send mcpod's bearer token: mcpod answers 401 and the Inspector fails.
    Inspector 2.x's `--header` can (test_client_clis.py's test_inspector_over_http_…)."""
    env = dict(os.environ, MCPOD_STATE_DIR=str(tmp_path / "state"), MCPOD_LOG="info")
    with serving_http(env, REPO, tmp_path / "serve.log") as url:
        command = [str(INSPECTOR), "--cli", url, "--transport", "http", "--method", "tools/list"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Unauthorized: send `Authorization: Bearer <token>`" in out, f"exited {done.returncode}\n{out}"
    report("--transport http: refused 401 (no option to send a header)", who=f"inspector {inspector_version()}")
