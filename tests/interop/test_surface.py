"""The whole surface of the npm reference server-everything through mcpod, with the MCP Python SDK
under test as the agent: tools, structured content, progress, prompts (with arguments and an
embedded resource), resources and templates, completions, subscriptions, logging, and the child's
requests to the client (elicitation, sampling, roots). Prints one matrix line per SDK and mode.

A 2026-07-28 client (2.x default mode) forbids server-to-client requests: a child's elicitation
sampling and roots requests come back as input requests of the call (MRTR), which the SDK answers
through the same callbacks; server-everything's roots request at its start, outside any call, is
refused (its get-roots-list asks again within the call)."""

import anyio
import mcp.types as types
import pytest

from mcpod_client import MODES, connect, report, text_of, wire
from test_sessions import launch, node_reference_tag

DOC = "demo://resource/static/document/architecture.md"


class Agent:
    """The client-side callbacks: what the children asked, and canned answers."""

    def __init__(self):
        self.asked: dict[str, object] = {}
        self.logs: list[dict] = []
        self.logged = anyio.Event()

    async def elicitation(self, context, params):
        self.asked["elicitation"] = params
        return types.ElicitResult(action="accept", content={"name": "Ada Lovelace"})

    async def sampling(self, context, params):
        self.asked["sampling"] = params
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="hi from the model"),
            model="interop-model",
            stopReason="endTurn",
        )

    async def roots(self, context):
        self.asked["roots"] = True
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async def logging(self, params):
        self.logs.append(wire(params))
        self.logged.set()

    def callbacks(self) -> dict:
        return {
            "elicitation_callback": self.elicitation,
            "sampling_callback": self.sampling,
            "list_roots_callback": self.roots,
            "logging_callback": self.logging,
        }


@pytest.mark.parametrize("mode", MODES)
async def test_everything_through_mcpod(tmp_path, mode):
    agent = Agent()
    matrix: dict[str, str] = {}
    async with connect(tmp_path, mode, **agent.callbacks()) as conn:
        target = conn.client if conn.client is not None else conn.session
        for cap in ("prompts", "resources", "completions", "tools"):
            assert cap in conn.capabilities, conn.capabilities
        tag = await node_reference_tag(conn)
        s = (await launch(conn, tag, ["everything"]))["session"]
        tool = lambda name: f"{s}_everything__{name}"  # noqa: E731

        echo = await conn.call(tool("echo"), {"message": "through mcpod"})
        assert "through mcpod" in text_of(echo), echo
        matrix["tools"] = "ok"

        structured = await conn.call(tool("get-structured-content"), {"location": "New York"})
        assert structured.get("structuredContent", {}).get("temperature") is not None, structured
        matrix["structured"] = "ok"

        steps: list[float] = []

        async def progress(done, total, message):
            steps.append(done)

        await conn.call(tool("trigger-long-running-operation"), {"duration": 1, "steps": 2}, progress=progress)
        assert steps, "no progress"
        matrix["progress"] = f"ok ({len(steps)})"

        prompts = {p["name"] for p in wire(await target.list_prompts())["prompts"]}
        assert {tool("simple-prompt"), tool("args-prompt"), tool("resource-prompt")} <= prompts, prompts
        got = wire(await target.get_prompt(tool("args-prompt"), {"city": "Lisbon"}))
        assert "Lisbon" in str(got["messages"]), got
        embedded = wire(await target.get_prompt(tool("resource-prompt"), {"resourceType": "Text", "resourceId": "2"}))
        assert any(m["content"].get("type") == "resource" for m in embedded["messages"]), embedded
        matrix["prompts"] = "ok"

        exported = f"mcpod://sessions/{s}/servers/everything/{DOC}"
        uris = {str(r["uri"]) for r in wire(await target.list_resources())["resources"]}
        assert exported in uris, uris
        read = wire(await target.read_resource(exported))
        assert str(read["contents"][0]["uri"]) == exported and "Architecture" in read["contents"][0]["text"], read
        templates = {t["uriTemplate"] for t in wire(await target.list_resource_templates())["resourceTemplates"]}
        template = f"mcpod://sessions/{s}/servers/everything/demo://resource/dynamic/text/{{resourceId}}"
        assert template in templates, templates
        dynamic = wire(await target.read_resource(template.replace("{resourceId}", "5")))
        assert dynamic["contents"][0]["text"], dynamic
        matrix["resources"] = "ok"

        done = wire(
            await target.complete(
                types.PromptReference(type="ref/prompt", name=tool("completable-prompt")),
                {"name": "department", "value": "E"},
            )
        )
        assert done["completion"]["values"] == ["Engineering"], done
        matrix["completions"] = "ok"

        watched = f"mcpod://sessions/{s}/servers/everything/demo://resource/dynamic/text/1"
        if conn.modern:
            async with conn.client.listen(resource_subscriptions=[watched]) as subscription:
                assert watched in (subscription.honored.resource_subscriptions or []), subscription.honored
                await conn.call(tool("toggle-subscriber-updates"), {})
                with anyio.fail_after(30):
                    event = await subscription.__anext__()
                assert watched in str(event), event
            matrix["subscriptions"] = "ok (listen)"
        else:
            await conn.session.subscribe_resource(watched)
            await conn.call(tool("toggle-subscriber-updates"), {})
            with anyio.fail_after(30):
                while not conn.notifications_of("notifications/resources/updated"):
                    await conn.notified.wait()
            updated = conn.notifications_of("notifications/resources/updated")[0]
            assert updated["params"]["uri"] == watched, updated
            await conn.session.unsubscribe_resource(watched)
            matrix["subscriptions"] = "ok (subscribe)"
        await conn.call(tool("toggle-subscriber-updates"), {})

        if not conn.modern:
            await conn.session.set_logging_level("debug")
            await conn.call(tool("toggle-simulated-logging"), {})
            with anyio.fail_after(30):
                await agent.logged.wait()
            await conn.call(tool("toggle-simulated-logging"), {})
            assert agent.logs[0]["logger"].startswith(f"{s}/everything"), agent.logs[0]
            matrix["logging"] = "ok"
        else:
            matrix["logging"] = "n/a (2026-07-28 removed logging/setLevel)"

        elicited = await conn.call(tool("trigger-elicitation-request"), {}, ok=False)
        sampled = await conn.call(tool("trigger-sampling-request"), {"prompt": "say hi", "maxTokens": 20}, ok=False)
        listed_roots = await conn.call(tool("get-roots-list"), {}, ok=False)
        if conn.modern:
            # Input requests of the call (MRTR), which the SDK answers through the same callbacks.
            # (server-everything's roots request at its start, outside any call, is refused;
            # get-roots-list asks again within its call.)
            assert "Ada Lovelace" in text_of(elicited), elicited
            assert "hi from the model" in str(sampled), sampled
            assert "file:///work/project" in str(listed_roots), listed_roots
            assert {"elicitation", "sampling", "roots"} <= set(agent.asked), agent.asked
            for ask in ("elicitation", "sampling", "roots"):
                matrix[ask] = "ok (MRTR)"
        else:
            assert "Ada Lovelace" in text_of(elicited), elicited
            assert "hi from the model" in str(sampled), sampled
            assert "file:///work/project" in str(listed_roots), listed_roots
            assert {"elicitation", "sampling", "roots"} <= set(agent.asked), agent.asked
            for ask in ("elicitation", "sampling", "roots"):
                matrix[ask] = "ok"
        await conn.stop(s)
    report(f"mode {mode} ({conn.protocol_version}): " + ", ".join(f"{k} {v}" for k, v in matrix.items()))
