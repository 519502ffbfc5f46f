"""Sessions of the npm reference servers (examples/node-reference) through the MCP Python SDK
under test: launch, tool-list changes, proxied calls, the call_tool fallback, cancellation of a
long proxied call, stop."""

import re
import time
import uuid

import anyio
import mcp.types as types
import pytest

from mcpod_client import MODES, SDK_MAJOR, Conn, connect, podman_session_containers, report, text_of

NODE_REFERENCE = "localhost/mcpod-node-reference"


async def node_reference_tag(conn: Conn) -> str:
    """build_image on examples/node-reference (a cache hit once built; scripts/build-node-reference stages it)."""
    built = await conn.call("build_image", {"name": NODE_REFERENCE, "context": "examples/node-reference"})
    s = built["structuredContent"]
    assert s["tag"].startswith(f"{NODE_REFERENCE}:"), s
    assert set(s["servers"]) == {"everything", "memory", "filesystem"}, s["servers"]
    return s["tag"]


async def launch(conn: Conn, tag: str, servers: list[str]) -> dict:
    """launch_session, waiting for the tool-list change it announces; the session's
    detail (list_sessions with `session`: the launch answers with less)."""
    async with conn.watch_tool_list() as watch:
        launched = await conn.call("launch_session", {"image": tag, "servers": servers})
        await watch.wait(30)
    brief = launched["structuredContent"]
    assert re.fullmatch(r"[a-z0-9]+", brief["session"]), brief["session"]
    assert sorted(brief["servers"]) == sorted(servers), brief["servers"]
    for name in servers:
        server = brief["servers"][name]
        assert server["status"] == "ready", f"{name}: {server}"
        assert all(t["input_schema"]["type"] == "object" for t in server["tools"]), server
    listed = await conn.call("list_sessions", {"session": brief["session"]})
    info = listed["structuredContent"]["detail"]
    assert info["isolation"]["network"] == "none" and info["isolation"]["read_only_root"] is True, info["isolation"]
    return info


async def stop_and_check(conn: Conn, session: str) -> None:
    async with conn.watch_tool_list() as watch:
        await conn.stop(session)
        await watch.wait(30)
    assert not [n for n in await conn.tool_names() if n.startswith(f"{session}_")]
    assert podman_session_containers(session) == []


@pytest.mark.parametrize("mode", MODES)
async def test_node_reference_session(tmp_path, mode):
    async with connect(tmp_path, mode) as conn:
        tag = await node_reference_tag(conn)
        before = await conn.tool_names()
        info = await launch(conn, tag, ["everything", "memory"])
        session = info["session"]
        assert info["servers"]["everything"]["handshake"]["name"], info["servers"]["everything"]
        echo = f"{session}_everything__echo"
        exported = {t["name"] for t in info["servers"]["everything"]["tools"]}
        assert {echo, f"{session}_everything__get-sum"} <= exported, exported

        # The list the client fetches after the change carries the proxied tools with the child's schemas.
        tools = {t["name"]: t for t in await conn.list_tools()}
        new = set(tools) - before
        assert {echo, f"{session}_everything__get-sum", f"{session}_memory__create_entities",
                f"{session}_memory__read_graph"} <= new, sorted(new)
        assert not [n for n in new if not n.startswith(f"{session}_")], new
        assert not [n for n in new if "_filesystem__" in n], "filesystem was not asked for"
        assert tools[echo]["inputSchema"]["properties"]["message"]["type"] == "string", tools[echo]
        assert tools[echo]["inputSchema"]["required"] == ["message"]

        said = await conn.call(echo, {"message": "through mcpod"})
        assert text_of(said) == "Echo: through mcpod", said
        total = await conn.call(f"{session}_everything__get-sum", {"a": 2, "b": 3})
        assert text_of(total) == "The sum of 2 and 3 is 5.", total

        entity = f"mcpod-interop-{uuid.uuid4().hex[:8]}"
        created = await conn.call(
            f"{session}_memory__create_entities",
            {"entities": [{"name": entity, "entityType": "project", "observations": ["proxied by mcpod"]}]},
        )
        assert [e["name"] for e in created["structuredContent"]["entities"]] == [entity], created
        graph = await conn.call(f"{session}_memory__read_graph", {})
        found = [e for e in graph["structuredContent"]["entities"] if e["name"] == entity]
        assert found and found[0]["observations"] == ["proxied by mcpod"], graph["structuredContent"]
        assert entity in text_of(graph)

        # The fallback for clients that ignore list changes: the same call by session/server/tool.
        fallback = await conn.call(
            "call_tool", {"session": session, "server": "everything", "tool": "echo", "arguments": {"message": "fallback"}}
        )
        assert text_of(fallback) == "Echo: fallback", fallback
        # A tool the server does not have is a tool error naming it, not a protocol error.
        missing = await conn.call("call_tool", {"session": session, "server": "everything", "tool": "no-such-tool"}, ok=False)
        assert missing.get("isError") is True and "no-such-tool" in text_of(missing), missing

        listed = (await conn.call("list_sessions"))["structuredContent"]["sessions"]
        ours = [s for s in listed if s["session"] == session]
        assert len(ours) == 1, listed

        await stop_and_check(conn, session)
        report(f"mode {mode}: node-reference session {session}: echo, get-sum, memory, call_tool, stop ok")


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_a_long_proxied_call(tmp_path, mode):
    async with connect(tmp_path, mode) as conn:
        tag = await node_reference_tag(conn)
        session = (await launch(conn, tag, ["everything"]))["session"]
        long_op = f"{session}_everything__trigger-long-running-operation"

        progress: list[float] = []
        first = anyio.Event()

        async def on_progress(value, total, message):
            progress.append(value)
            first.set()

        outcome: dict = {}

        async def long_call():
            # 300 steps of 1 s: it cannot finish within the test.
            outcome["result"] = await conn.call(long_op, {"duration": 300, "steps": 300}, progress=on_progress)

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            with anyio.fail_after(60):
                await first.wait()
            tg.cancel_scope.cancel()  # client-side cancel of the in-flight call
        ended = time.monotonic() - started
        assert "result" not in outcome, outcome
        assert ended < 60, ended
        assert progress and progress[0] == 1, progress

        request = [m for m in conn.sent("tools/call") if m["params"]["name"] == long_op][0]
        rid, token = request["id"], request["params"]["_meta"]["progressToken"]

        def cancels():
            return [m for m in conn.sent("notifications/cancelled") if m["params"]["requestId"] == rid]

        with anyio.move_on_after(3):
            while not cancels():
                await anyio.sleep(0.05)
        if SDK_MAJOR >= 2:
            assert cancels(), "2.x sends notifications/cancelled when the caller abandons a request"
            how = "the SDK sent notifications/cancelled"
        else:
            # 1.x: cancelling the caller's scope only stops waiting; no notifications/cancelled
            # goes out, so an application has to send it itself (as here, with the request's id).
            assert not cancels(), "mcp 1.x now sends notifications/cancelled itself: drop this branch"
            await conn.session.send_notification(
                types.ClientNotification(
                    types.CancelledNotification(
                        method="notifications/cancelled",
                        params=types.CancelledNotificationParams(requestId=rid, reason="interop: client-side cancel"),
                    )
                )
            )
            with anyio.fail_after(3):
                while not cancels():
                    await anyio.sleep(0.05)
            how = "mcp 1.x sent no notifications/cancelled on a cancelled scope; the test sent it"
        cancel_t = [e["t"] for e in conn.wire_entries() if e["dir"] == ">" and e.get("msg", {}).get("method") == "notifications/cancelled"][-1]

        # server-everything ignores the abort and keeps sending a progress notification per second;
        # mcpod must stop forwarding them and must not answer the cancelled request.
        await anyio.sleep(4)
        progress_of_call = conn.received(
            lambda m: m.get("method") == "notifications/progress" and m["params"]["progressToken"] == token
        )
        assert [t for t, _ in progress_of_call if t < cancel_t], "no progress arrived before the cancel"
        late = [(t, m["params"]["progress"]) for t, m in progress_of_call if t > cancel_t + 0.5]
        assert late == [], f"progress forwarded after the cancel: {late}"
        answers = conn.received(lambda m: m.get("id") == rid and "method" not in m)
        assert answers == [], f"mcpod answered the cancelled request {rid}: {answers}"

        # The session still answers at once, on the same server.
        t0 = time.monotonic()
        said = await conn.call(f"{session}_everything__echo", {"message": "still here"}, timeout=15)
        assert text_of(said) == "Echo: still here"
        echo_s = time.monotonic() - t0
        logs = (await conn.call("session_logs", {"session": session, "server": "everything"}))["structuredContent"]
        assert logs["session"] == session
        assert any("Starting default (STDIO) server" in line for line in logs["servers"]["everything"]), logs

        await stop_and_check(conn, session)
        report(
            f"mode {mode}: cancel after {ended:.1f} s of a 300 s call ({how}); "
            f"no progress or answer after it; echo answered in {echo_s:.2f} s"
        )


@pytest.mark.parametrize("mode", MODES)
async def test_closing_the_connection_removes_the_session(tmp_path, mode):
    """A client that exits without stop_session: mcpod sees stdin close and removes the container."""
    async with connect(tmp_path, mode) as conn:
        tag = await node_reference_tag(conn)
        session = (await launch(conn, tag, ["memory"]))["session"]
        assert len(podman_session_containers(session)) == 1, "the session container runs"
        conn.abandon(session)
    # connect() fails if `podman ps -a` still lists it (after waiting a moment).
    assert podman_session_containers(session) == []
    assert "removed 1 session container(s)" in conn.stderr_log.read_text(), conn.stderr_tail()
    report(f"mode {mode}: closing the client without stop_session removed session {session}")


PYTHON_TIME = "localhost/mcpod-python-time"


@pytest.mark.parametrize("mode", MODES)
async def test_python_time_session(tmp_path, mode):
    """The PyPI mcp-server-time (examples/python-time) through mcpod: get_current_time."""
    async with connect(tmp_path, mode) as conn:
        built = await conn.call("build_image", {"name": PYTHON_TIME, "context": "examples/python-time"})
        tag = built["structuredContent"]["tag"]
        assert {"time", "git"} <= set(built["structuredContent"]["servers"]), built["structuredContent"]
        info = await launch(conn, tag, ["time"])
        session = info["session"]
        assert info["servers"]["time"]["handshake"]["name"], info["servers"]["time"]
        now = await conn.call(f"{session}_time__get_current_time", {"timezone": "UTC"})
        assert now["structuredContent"]["timezone"] == "UTC", now
        assert re.match(r"\d{4}-\d{2}-\d{2}T", now["structuredContent"]["datetime"]), now
        converted = await conn.call(
            f"{session}_time__convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        )
        assert "21:00" in text_of(converted), converted
        await stop_and_check(conn, session)
        report(f"mode {mode}: python-time session {session}: get_current_time, convert_time, stop ok")
