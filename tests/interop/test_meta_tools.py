"""The handshake, the meta-tools and build_image through the MCP Python SDK under test."""

import pytest

from mcpod_client import (
    LEGACY_VERSION,
    META_TOOLS,
    MODERN_VERSION,
    MODES,
    SDK_MAJOR,
    connect,
    report,
    text_of,
)


@pytest.mark.parametrize("mode", MODES)
async def test_handshake_negotiates_the_expected_version(tmp_path, mode):
    async with connect(tmp_path, mode) as conn:
        # A request after the handshake: once it is answered, everything sent before it is logged.
        assert "build_image" in await conn.tool_names()
        first = [e["msg"] for e in conn.wire_entries() if e["dir"] == ">"][0]
        if SDK_MAJOR >= 2 and mode == "default":
            # 2.x's default (mode="auto") probes server/discover and adopts 2026-07-28.
            assert first["method"] == "server/discover", first
            assert conn.protocol_version == MODERN_VERSION
            assert conn.session.discover_result is not None
            assert conn.session.initialize_result is None
            assert MODERN_VERSION in conn.session.discover_result.supported_versions
            assert not conn.sent("initialize"), "the SDK fell back to initialize"
            assert not conn.sent("notifications/initialized")
            how = "server/discover"
        else:
            assert first["method"] == "initialize", first
            assert first["params"]["protocolVersion"] == LEGACY_VERSION
            assert conn.protocol_version == LEGACY_VERSION
            assert conn.sent("notifications/initialized")
            how = "initialize"
        assert conn.capabilities["tools"]["listChanged"] is True, conn.capabilities
        if conn.server_info is not None or not conn.modern:  # optional in a discover result
            assert conn.server_info["name"] == "mcpod", conn.server_info
        report(f"mode {mode}: {how} -> protocol {conn.protocol_version}, server {conn.server_info}")


@pytest.mark.parametrize("mode", MODES)
async def test_meta_tools_are_listed_with_schemas(tmp_path, mode):
    async with connect(tmp_path, mode) as conn:
        tools = {t["name"]: t for t in await conn.list_tools()}
        assert META_TOOLS <= set(tools), f"missing: {META_TOOLS - set(tools)}"
        for name in META_TOOLS:
            schema = tools[name]["inputSchema"]
            assert schema["type"] == "object", (name, schema)
            assert tools[name]["description"], name
        assert tools["build_image"]["inputSchema"]["required"] == ["name"]
        assert {"name", "context", "no_cache", "servers"} <= set(tools["build_image"]["inputSchema"]["properties"])
        # `image` or `provision`: neither is required alone.
        assert {"image", "provision"} <= set(tools["launch_session"]["inputSchema"]["properties"])
        assert set(tools["call_tool"]["inputSchema"]["required"]) == {"session", "server", "tool"}
        out = tools["build_image"]["outputSchema"]
        assert out["type"] == "object"
        assert {"tag", "cache_hit", "key", "image_id", "servers"} <= set(out["properties"]), out
        assert tools["inspect_labels"]["annotations"]["readOnlyHint"] is True
        assert tools["stop_session"]["annotations"]["destructiveHint"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_build_image_reports_progress_and_caches(tmp_path, mode):
    """A forced build of examples/hello (context relative to the root) under its own name, so it
    neither moves nor waits for the tag other tests use; then the same build is a cache hit."""
    name = "localhost/mcpod-interop-hello"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    async with connect(tmp_path, mode) as conn:
        built = await conn.call(
            "build_image", {"name": name, "context": "examples/hello", "no_cache": True}, progress=on_progress
        )
        s = built["structuredContent"]
        assert s["tag"].startswith(f"{name}:") and len(s["tag"]) == len(name) + 17, s["tag"]
        assert s["cache_hit"] is False
        assert s["servers"]["hello"]["command"] == ["/bin/hello-server"], s
        assert s["servers_source"] == "io.mcpod.servers"
        assert s["context_files"] >= 1
        # The same JSON as text, for clients that ignore structuredContent.
        assert '"tag"' in text_of(built) and s["tag"] in text_of(built)
        messages = [m for _, _, m in progress if m]
        assert any(f"building {s['tag']}" in m for m in messages), messages
        assert any(f"built {s['tag']}" in m for m in messages), messages
        assert len(progress) >= 3, progress
        values = [v for v, _, _ in progress]
        assert values == sorted(values) and len(set(values)) == len(values), f"progress must increase: {values}"
        # The token on the wire is the one the SDK put on the request.
        token = conn.sent("tools/call")[0]["params"]["_meta"]["progressToken"]
        tokens = {m["params"]["progressToken"] for _, m in conn.received(lambda m: m.get("method") == "notifications/progress")}
        assert tokens == {token}, tokens

        again = await conn.call("build_image", {"name": name, "context": "examples/hello"})
        a = again["structuredContent"]
        assert a["cache_hit"] is True
        assert (a["tag"], a["image_id"], a["key"]) == (s["tag"], s["image_id"], s["key"])
        report(f"mode {mode}: build_image {s['tag']}: {len(progress)} progress notifications, then a cache hit")
