"""Take each server of servers.json from its package reference to `tools/list` through mcpod.

For every entry: start `mcpod serve` (its own process, the run's state dir), connect the MCP
Python SDK over stdio, call `launch_session` with the reference and the entry's arguments and
dummy env (as launch overrides), list mcpod's tools and keep the session's, stop the session,
close. A failure gets a class from classify.py. One line per server, then the pass rates, and a
JSON report. Run through scripts/breadth, which builds mcpod and the SDK's venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from classify import classify, evidence

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


def owned_containers(pid: int) -> list[str]:
    """Session containers whose owner is the mcpod with this pid (label io.mcpod.owner-pid)."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=io.mcpod.owner-pid={pid}", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=120,
    )
    return [n for n in out.stdout.split() if n.startswith("mcpod-")]


async def try_server(entry: dict, opts, state_dir: Path, scratch: Path) -> dict:
    name = entry["name"]
    work = scratch / name
    (work / "root").mkdir(parents=True)
    pidfile, errlog_path = work / "mcpod.pid", work / "mcpod.stderr"
    env = dict(os.environ, MCPOD_STATE_DIR=str(state_dir), MCPOD_LOG=os.environ.get("MCPOD_LOG", "info"))
    params = StdioServerParameters(
        command="/bin/sh",
        args=["-c", 'echo $$ >"$0"; exec "$@"', str(pidfile), str(opts.mcpod), "serve",
              "--root", str(work / "root"), "--handshake-timeout", str(opts.handshake_timeout)],
        env=env, cwd=str(work),
    )
    provision = {"package": entry["ref"], "server": name}
    if entry.get("bin"):
        provision["bin"] = entry["bin"]
    launch = {"provision": provision}
    if entry.get("args") or entry.get("env"):
        launch["overrides"] = {name: {"args": entry.get("args", []), "env": entry.get("env", {})}}
    row = {"name": name, "ref": entry["ref"], "needs_network": bool(entry.get("needs_network")),
           "launch": launch, "passed": False, "tools": [], "session": None}
    started = time.monotonic()
    errlog = open(errlog_path, "w", encoding="utf-8")
    text = ""
    try:
        with anyio.fail_after(opts.deadline):
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    result = await session.call_tool("launch_session", launch)
                    row["launch_secs"] = round(time.monotonic() - started, 1)
                    info = result.structuredContent or {}
                    if result.isError or "session" not in info:
                        text = text_of(result)
                    else:
                        sid = row["session"] = info["session"]
                        # The launch answers with less; the session's detail has the rest.
                        listed = await session.call_tool("list_sessions", {"session": sid})
                        info = (listed.structuredContent or {}).get("detail") or info
                        report = info.get("servers", {}).get(name, {})
                        row["provisioned"] = (info.get("provisioned") or {}).get("reference")
                        try:
                            if report.get("status") == "ready":
                                prefix = f"{sid}_{name}__"
                                tools, cursor = [], None
                                while True:
                                    page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
                                    tools += [t.name for t in page.tools if t.name.startswith(prefix)]
                                    cursor = page.nextCursor
                                    if not cursor:
                                        break
                                row["tools"] = [t[len(prefix):] for t in tools]
                                row["passed"] = bool(tools)
                                if not tools:
                                    text = "ready, but tools/list holds none of its tools"
                            else:
                                text = f"{report.get('reason', 'no report')} (exit code {report.get('exit_code')})\n{report.get('stderr_tail', '')}"
                        finally:
                            with anyio.CancelScope(shield=True), anyio.move_on_after(120):
                                await session.call_tool("stop_session", {"session": sid})
    except TimeoutError:
        text = f"the run's deadline: no result within {opts.deadline} s"
    except Exception as e:  # the connection broke: mcpod died or the SDK failed
        text = f"client error: {e!r}"
    finally:
        errlog.close()
    row["secs"] = round(time.monotonic() - started, 1)
    # Whatever this mcpod left: it removes its sessions when its stdin closes; give it a moment.
    try:
        pid = int(pidfile.read_text().strip())
        for _ in range(30):
            left = owned_containers(pid)
            if not left:
                break
            await anyio.sleep(0.5)
        if left:
            row["left_behind"] = left
            subprocess.run(["podman", "rm", "-f", *left], capture_output=True, timeout=120)
    except (OSError, ValueError):
        pass
    if not row["passed"]:
        if not text.strip():
            tail = errlog_path.read_text(errors="replace").splitlines()[-5:] if errlog_path.exists() else []
            text = "no error text; mcpod's stderr ends: " + " | ".join(tail)
        row["class"], row["rule"] = classify(text)
        row["error_line"] = evidence(text)
        row["error"] = text[-4000:]
    return row


def line(row: dict) -> str:
    status = "PASS" if row["passed"] else "FAIL"
    head = f"{status} {row['name']:<20} {row['ref']:<60} {row['secs']:6.1f}s"
    if row["passed"]:
        return f"{head} {len(row['tools'])} tools"
    net = " (needs network)" if row["needs_network"] else ""
    return f"{head} [{row['class']}]{net} {row['error_line']}"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--servers", type=Path, default=HERE / "servers.json")
    ap.add_argument("--only", action="append", default=[], help="names to run (repeatable or comma-separated)")
    ap.add_argument("--jobs", type=int, default=1, choices=[1, 2])
    ap.add_argument("--deadline", type=float, default=900, help="seconds per server, provisioning included")
    ap.add_argument("--handshake-timeout", type=int, default=60)
    ap.add_argument("--state-dir", type=Path, help="MCPOD_STATE_DIR to use (kept); default a fresh one, removed")
    ap.add_argument("--report", type=Path, default=REPO / "target" / "breadth-report.json")
    ap.add_argument("--mcpod", type=Path, default=REPO / "target" / "debug" / "mcpod")
    opts = ap.parse_args()

    servers = json.loads(opts.servers.read_text())["servers"]
    wanted = {n for arg in opts.only for n in arg.split(",") if n}
    unknown = wanted - {s["name"] for s in servers}
    if unknown:
        print(f"breadth: no server named {', '.join(sorted(unknown))} in {opts.servers}", file=sys.stderr)
        return 2
    chosen = [s for s in servers if not wanted or s["name"] in wanted]

    scratch = Path(tempfile.mkdtemp(prefix="mcpod-breadth.", dir="/var/tmp"))
    state_dir = opts.state_dir or scratch / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    limiter = anyio.CapacityLimiter(opts.jobs)
    print(f"breadth: {len(chosen)} servers, {opts.jobs} at a time, deadline {opts.deadline:.0f} s, state {state_dir}", flush=True)

    async def one(entry: dict) -> None:
        async with limiter:
            row = await try_server(entry, opts, state_dir, scratch)
        rows[entry["name"]] = row
        print(line(row), flush=True)

    started = time.monotonic()
    try:
        async with anyio.create_task_group() as tg:
            for entry in chosen:
                tg.start_soon(one, entry)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ordered = [rows[s["name"]] for s in chosen if s["name"] in rows]
    passed = sum(r["passed"] for r in ordered)
    offline = [r for r in ordered if not r["needs_network"]]
    offline_passed = sum(r["passed"] for r in offline)
    classes: dict[str, int] = {}
    for r in ordered:
        if not r["passed"]:
            classes[r["class"]] = classes.get(r["class"], 0) + 1
    pct = lambda a, b: f"{100 * a / b:.0f}%" if b else "n/a"
    summary = {
        "servers": len(ordered), "passed": passed, "pass_rate": pct(passed, len(ordered)),
        "offline_servers": len(offline), "offline_passed": offline_passed,
        "offline_pass_rate": pct(offline_passed, len(offline)),
        "failures_by_class": dict(sorted(classes.items())),
        "left_behind": {r["name"]: r["left_behind"] for r in ordered if r.get("left_behind")},
        "secs": round(time.monotonic() - started, 1),
    }
    print(f"\nbreadth: {passed}/{len(ordered)} passed ({summary['pass_rate']}); "
          f"of those that do not need the network at start: {offline_passed}/{len(offline)} ({summary['offline_pass_rate']})")
    for cls, count in summary["failures_by_class"].items():
        print(f"  {count:3} {cls}")
    if summary["left_behind"]:
        print(f"breadth: containers left behind (removed now): {summary['left_behind']}")
    opts.report.write_text(json.dumps({"summary": summary, "servers": ordered}, indent=2) + "\n")
    print(f"breadth: report in {opts.report} ({summary['secs']:.0f} s)")
    return 0 if offline_passed == len(offline) else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
