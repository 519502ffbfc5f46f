"""Connect the MCP Python SDK under test (the 1.x or the 2.x line) to the real mcpod over stdio.

Both lines launch `target/debug/mcpod serve --root <repo>` with `mcp.client.stdio.stdio_client`
and talk through `mcp.ClientSession`:

* 1.x: `ClientSession.initialize()`, the legacy handshake (its only one).
* 2.x, mode "default": `mcp.Client` over the same `stdio_client` transport, with the SDK's default
  `mode="auto"`: it probes `server/discover` and lands on 2026-07-28. `Client.session` is the
  `ClientSession` underneath. Tool-list changes come through `subscriptions/listen`.
* 2.x, mode "legacy": a bare `ClientSession` and `initialize()`, as on 1.x.

Results are compared as wire JSON (`model_dump(by_alias=True)`), because 1.x models spell
fields `structuredContent` and 2.x models `structured_content`.

mcpod runs under `wiretap.py`, which logs every JSON-RPC line in both directions, so a test can
check what the SDK really sent (e.g. whether cancelling a call sent `notifications/cancelled`)
and what mcpod answered. mcpod's stderr goes to a file next to the log.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import anyio
import mcp.types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

SDK_VERSION = importlib.metadata.version("mcp")
SDK_MAJOR = int(SDK_VERSION.split(".")[0])
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MCPOD = Path(os.environ.get("MCPOD_BIN", REPO / "target" / "debug" / "mcpod"))
WIRETAP = HERE / "wiretap.py"

META_TOOLS = {
    "build_image",
    "inspect_labels",
    "launch_session",
    "list_sessions",
    "stop_session",
    "session_logs",
    "call_tool",
    "show_policy",
    "find_tools",
    "provision_server",
    "list_bases",
    "read_audit",
}
LEGACY_VERSION = "2025-11-25"  # the newest initialize-handshake revision (both SDK lines)
MODERN_VERSION = "2026-07-28"  # server/discover, 2.x only

# Generous on purpose: podman serialises on its storage lock, and another process building an
# image can hold it for minutes. A hang still fails instead of blocking CI forever.
TIMEOUT = float(os.environ.get("MCPOD_INTEROP_TIMEOUT", "600"))

# 2.x modes this line can exercise; 1.x has only the legacy handshake.
MODES = ["default", "legacy"] if SDK_MAJOR >= 2 else ["legacy"]


def wire(model: Any) -> dict:
    """A pydantic model as wire JSON (camelCase keys, no nulls), the same on both SDK lines."""
    if isinstance(model, dict):
        return model
    root = getattr(model, "root", model)  # 1.x wraps unions in RootModel
    return root.model_dump(by_alias=True, mode="json", exclude_none=True)


def text_of(result: dict) -> str:
    return "\n".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def report(line: str, who: str = f"mcp {SDK_VERSION}") -> None:
    """Add a line to the run's report (tests/interop/run prints it at the end)."""
    path = os.environ.get("MCPOD_INTEROP_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"[{who}] {line}\n")


def podman_session_containers(session: str) -> list[str]:
    """`podman ps -a --filter label=io.mcpod.session=<id>`: the session's containers, any state."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=io.mcpod.session={session}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


@contextmanager
def serving_http(env: dict, root: Path, log: Path) -> Iterator[str]:
    """`mcpod serve --listen 127.0.0.1:0 --root ROOT` under `env` (its MCPOD_STATE_DIR holds the
    tokens), its stderr in `log`: yields its URL; SIGTERM at the end."""
    with open(log, "w") as err:
        serve = subprocess.Popen(
            [str(MCPOD), "serve", "--listen", "127.0.0.1:0", "--root", str(root)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"serving MCP over HTTP on (http://127\.0\.0\.1:\d+/mcp)", log.read_text())):
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield found.group(1)
    finally:
        serve.terminate()
        try:
            # It removes its sessions' containers before it ends.
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


class ToolListWatch:
    """Waits for one tool-list change: a `notifications/tools/list_changed` seen by the
    message_handler (legacy handshake), or a `ToolsListChanged` event of an open
    `subscriptions/listen` stream (2026-07-28)."""

    def __init__(self, conn: "Conn", subscription: Any = None):
        self.conn = conn
        self.subscription = subscription
        self.baseline = len(conn.notifications_of("notifications/tools/list_changed"))

    async def wait(self, timeout: float = 30) -> Any:
        with anyio.fail_after(timeout):
            if self.subscription is not None:
                from mcp.client.subscriptions import ToolsListChanged

                event = await self.subscription.__anext__()
                assert isinstance(event, ToolsListChanged), f"unexpected listen event {event!r}"
                return event
            while len(self.conn.notifications_of("notifications/tools/list_changed")) <= self.baseline:
                await self.conn.notified.wait()
            changed = self.conn.notifications_of("notifications/tools/list_changed")
            self.baseline = len(changed)
            return changed[-1]


class Conn:
    """One connection to mcpod through the SDK under test."""

    def __init__(self, workdir: Path, mode: str):
        self.workdir = workdir
        self.mode = mode
        self.modern = False
        self.session: Any = None  # mcp.ClientSession
        self.client: Any = None  # mcp.Client (2.x default mode)
        self.protocol_version: str | None = None
        self.server_info: dict | None = None
        self.capabilities: dict = {}
        self.wire_log = workdir / "wire.jsonl"
        self.stderr_log = workdir / "mcpod.stderr"
        self.started = time.monotonic()
        # (seconds since connect, wire JSON) of every server notification the SDK surfaced
        self.notifications: list[tuple[float, dict]] = []
        self.exceptions: list[Exception] = []
        self.notified = anyio.Event()
        self.launched: list[str] = []
        self.stopped: set[str] = set()
        self.abandoned: set[str] = set()  # left for mcpod to remove when its stdin closes

    # -- notifications ---------------------------------------------------------------------
    async def message_handler(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.exceptions.append(message)
            return
        self.notifications.append((time.monotonic() - self.started, wire(message)))
        event, self.notified = self.notified, anyio.Event()
        event.set()

    def notifications_of(self, method: str) -> list[dict]:
        return [n for _, n in self.notifications if n.get("method") == method]

    @asynccontextmanager
    async def watch_tool_list(self) -> AsyncIterator[ToolListWatch]:
        """Open before the action that changes the tools; `await watch.wait()` after it."""
        if self.modern:
            async with self.client.listen(tools_list_changed=True) as subscription:
                assert subscription.honored.tools_list_changed, f"listen not honored: {subscription.honored!r}"
                yield ToolListWatch(self, subscription)
        else:
            yield ToolListWatch(self)

    # -- requests --------------------------------------------------------------------------
    async def list_tools(self) -> list[dict]:
        tools: list[dict] = []
        cursor = None
        with anyio.fail_after(TIMEOUT):
            while True:
                if self.client is not None:
                    page = await self.client.list_tools(cursor=cursor)
                else:
                    params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await self.session.list_tools(params=params)
                page = wire(page)
                tools.extend(page.get("tools", []))
                cursor = page.get("nextCursor")
                if not cursor:
                    return tools

    async def tool_names(self) -> set[str]:
        return {t["name"] for t in await self.list_tools()}

    async def call(
        self,
        name: str,
        arguments: dict | None = None,
        *,
        progress: Callable | None = None,
        timeout: float = TIMEOUT,
        ok: bool = True,
    ) -> dict:
        """Call a tool; with `ok` (the default) fail unless the result is a success."""
        with anyio.fail_after(timeout):
            target = self.client if self.client is not None else self.session
            result = wire(await target.call_tool(name, arguments or {}, progress_callback=progress))
        if ok:
            assert not result.get("isError"), f"{name} failed: {text_of(result)}"
        if name == "launch_session" and "session" in (result.get("structuredContent") or {}):
            self.launched.append(result["structuredContent"]["session"])
        if name == "stop_session" and (result.get("structuredContent") or {}).get("stopped"):
            self.stopped.add(result["structuredContent"]["session"])
        return result

    def abandon(self, session: str) -> None:
        """Do not stop `session` when the test ends: closing the connection must remove it."""
        self.abandoned.add(session)

    async def stop(self, session: str) -> dict:
        stopped = await self.call("stop_session", {"session": session})
        assert stopped["structuredContent"] == {"session": session, "stopped": True}, stopped
        return stopped

    # -- the wire log ----------------------------------------------------------------------
    def wire_entries(self) -> list[dict]:
        if not self.wire_log.exists():
            return []
        return [json.loads(line) for line in self.wire_log.read_text().splitlines() if line.strip()]

    def sent(self, method: str) -> list[dict]:
        """Messages the SDK sent to mcpod with this method, in order."""
        return [e["msg"] for e in self.wire_entries() if e["dir"] == ">" and e.get("msg", {}).get("method") == method]

    def received(self, predicate: Callable[[dict], bool]) -> list[tuple[float, dict]]:
        """(time, message) mcpod sent to the SDK that match, in order."""
        return [(e["t"], e["msg"]) for e in self.wire_entries() if e["dir"] == "<" and "msg" in e and predicate(e["msg"])]

    def stderr_tail(self, lines: int = 40) -> str:
        if not self.stderr_log.exists():
            return ""
        return "\n".join(self.stderr_log.read_text(errors="replace").splitlines()[-lines:])

    def dump_for_failure(self) -> None:
        """Print the end of the wire log and of mcpod's stderr (pytest shows it for a failure)."""
        print(f"--- last wire messages ({self.wire_log}) ---", file=sys.stderr)
        for e in self.wire_entries()[-30:]:
            print(f"{e['t']:9.3f} {e['dir']} {json.dumps(e.get('msg', e.get('raw')))[:400]}", file=sys.stderr)
        print(f"--- mcpod stderr ({self.stderr_log}) ---\n{self.stderr_tail()}", file=sys.stderr)


def _params(workdir: Path) -> StdioServerParameters:
    env = dict(os.environ)
    env.setdefault("MCPOD_LOG", "info")
    return StdioServerParameters(
        command=sys.executable,
        args=[str(WIRETAP), str(workdir / "wire.jsonl"), "--", str(MCPOD), "serve", "--root", str(REPO)],
        env=env,
        cwd=str(REPO),
    )


async def _finish(conn: Conn) -> None:
    """Before the connection closes: stop what a failing test left running, then make one more
    round trip so every notification mcpod sent before it (e.g. the resources/list_changed that
    follows a launch or stop result) is read. mcp 1.x's stdio_client raises BrokenResourceError
    when a message arrives while it is closing (python-sdk#1960)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(120):
        for session in conn.launched:
            if session in conn.stopped or session in conn.abandoned:
                continue
            try:
                await conn.call("stop_session", {"session": session}, ok=False)
            except Exception as e:  # the connection may be gone; podman is checked below
                print(f"stop_session {session} during cleanup failed: {e!r}", file=sys.stderr)
        try:
            await conn.list_tools()
        except Exception as e:
            print(f"the closing tools/list failed: {e!r}", file=sys.stderr)


def _leftovers(sessions: list[str], patience: float) -> dict[str, list[str]]:
    """Containers of `sessions` still in `podman ps -a`, waiting up to `patience` s for them to go."""
    deadline = time.monotonic() + patience
    while True:
        left = {s: c for s in sessions if (c := podman_session_containers(s))}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@asynccontextmanager
async def connect(workdir: Path, mode: str = "default", **callbacks: Any) -> AsyncIterator[Conn]:
    """Start mcpod, connect the SDK under test, yield the connection; on exit stop any session
    the test left running and fail if `podman ps -a` still shows a container of one.
    `callbacks` (sampling_callback, elicitation_callback, list_roots_callback, logging_callback)
    go to the SDK's client, which then declares those capabilities."""
    conn = Conn(workdir, mode)
    failed = False
    errlog = open(conn.stderr_log, "a", encoding="utf-8")
    try:
        transport = stdio_client(_params(workdir), errlog=errlog)
        if SDK_MAJOR >= 2 and mode == "default":
            from mcp import Client

            # No timeout around entering: the discover probe has the SDK's own 10 s deadline, and
            # a cancel scope must not straddle the task group the client opens.
            async with Client(transport, message_handler=conn.message_handler, **callbacks) as client:
                conn.client, conn.session = client, client.session
                conn.protocol_version = client.protocol_version
                conn.modern = conn.protocol_version == MODERN_VERSION
                conn.server_info = wire(client.server_info) if client.server_info else None
                conn.capabilities = wire(client.server_capabilities)
                try:
                    yield conn
                except BaseException:
                    failed = True
                    conn.dump_for_failure()
                    raise
                finally:
                    await _finish(conn)
        else:
            async with transport as (read, write):
                async with ClientSession(read, write, message_handler=conn.message_handler, **callbacks) as session:
                    with anyio.fail_after(TIMEOUT):
                        init = wire(await session.initialize())
                    conn.session = session
                    conn.protocol_version = init["protocolVersion"]
                    conn.server_info = init.get("serverInfo")
                    conn.capabilities = init.get("capabilities", {})
                    try:
                        yield conn
                    except BaseException:
                        failed = True
                        conn.dump_for_failure()
                        raise
                    finally:
                        await _finish(conn)
    finally:
        errlog.close()
        # An abandoned session goes when mcpod sees stdin close; give its `podman rm` a moment.
        leaked = _leftovers(conn.launched, 15 if conn.abandoned else 0)
        for containers in leaked.values():
            subprocess.run(["podman", "rm", "-f", *containers], capture_output=True, timeout=TIMEOUT)
        if leaked and not failed:
            raise AssertionError(f"containers left behind (now removed): {leaked}")
