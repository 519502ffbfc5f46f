"""One MCP client over Streamable HTTP (the Python SDK's client), for tests/http_serve.rs.

    http_client.py URL TOKEN STEP [ARG]

TOKEN `-` with MCPOD_OAUTH_CLIENT=ID:SECRET and MCPOD_OAUTH_ISSUER set: no token is given; the
SDK's OAuth client finds the issuer in mcpod's protected-resource metadata and gets one with the
client_credentials grant (scopes from MCPOD_OAUTH_SCOPES; the issuer's CA from SSL_CERT_FILE).

With MCPOD_UDS=PATH the client connects to the unix socket PATH (URL http://localhost/mcp).

Steps: `launch IMAGE` (initialize, tools/list, launch_session, call the session's greet tool,
list_sessions; prints JSON), `list` (list_sessions' session ids), `stop SESSION`
(stop_session's error or result), `call SESSION` (call_tool of greet), `open INPUT`
(launch_session with the JSON INPUT), `surface SESSION` (what find_tools, prompts/list,
resources/list and resources/templates/list name, and prompts/get, resources/read of a resource
and of the stderr log, completion/complete and resources/subscribe naming SESSION's server
`everything`), `task SESSION` (a long call of SESSION's everything server by a client that
declared Tasks: its task id), `task_reach TASK` (tasks/get and tasks/cancel of TASK), `audit
FILTER` (read_audit with the JSON FILTER), `try CALL` (the JSON {"tool", "arguments"}: its
result or error), `task_token SESSION` (a 10 s task with progress token 2), `progress SESSION` (a
2 s call with a progress callback: how many notifications came). Every step ends with list_sessions. Prints one
JSON object.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, types
from mcp.shared.exceptions import McpError
from mcp.client.streamable_http import streamablehttp_client


def structured(result):
    if result.structuredContent is not None:
        return result.structuredContent
    return {"text": "".join(getattr(c, "text", "") for c in result.content), "isError": result.isError}


async def refused_or(call):
    """The call's result, or a protocol error as {"isError": true, "text": ...}."""
    try:
        return structured(await call)
    except McpError as e:
        return {"isError": True, "text": str(e)}


async def answered(call):
    """{"ok": the request's result as JSON} or {"error": its protocol error's message}."""
    try:
        return {"ok": (await call).model_dump(mode="json", by_alias=True, exclude_none=True)}
    except McpError as e:
        return {"error": str(e)}


TASKS = "io.modelcontextprotocol/tasks"


class DeclaringTasks(ClientSession):
    """A client that declares the Tasks extension at initialize, which the SDK does not."""

    async def send_request(self, request, result_type, *args, **kwargs):
        if isinstance(request.root, types.InitializeRequest):
            request.root.params.capabilities.extensions = {TASKS: {}}
        return await super().send_request(request, result_type, *args, **kwargs)


async def surface(session, s):
    """What this principal sees of session `s`'s server `everything`, and what it may reach."""
    out = {}
    found = structured(await session.call_tool("find_tools", {"query": ""}))
    out["found"] = [t["name"] for t in found.get("tools", [])]
    out["prompts"] = [p.name for p in (await session.list_prompts()).prompts]
    out["resources"] = [str(r.uri) for r in (await session.list_resources()).resources]
    templates = (await session.list_resource_templates()).resourceTemplates
    out["templates"] = [t.uriTemplate for t in templates]
    everything = f"mcpod://sessions/{s}/servers/everything/"
    doc = everything + "demo://resource/static/document/architecture.md"
    prompt = types.PromptReference(type="ref/prompt", name=f"{s}_everything__completable-prompt")
    out["get_prompt"] = await answered(session.get_prompt(f"{s}_everything__simple-prompt"))
    out["read"] = await answered(session.read_resource(doc))
    out["read_log"] = await answered(session.read_resource(f"mcpod://sessions/{s}/logs/everything"))
    out["complete"] = await answered(session.complete(prompt, {"name": "department", "value": "E"}))
    watched = everything + "demo://resource/dynamic/text/1"
    out["subscribe"] = await answered(session.subscribe_resource(watched))
    out["unsubscribe"] = await answered(session.unsubscribe_resource(watched))
    return out


def task_request(method, task):
    kind = types.GetTaskRequest if method == "get" else types.CancelTaskRequest
    params = types.GetTaskRequestParams if method == "get" else types.CancelTaskRequestParams
    return types.ClientRequest(kind(params=params(taskId=task)))


class Memory:
    """Where the OAuth client keeps its token: in memory, for one run."""

    def __init__(self):
        self.tokens, self.info = None, None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.info

    async def set_client_info(self, info):
        self.info = info


def oauth(url):
    """The SDK's client_credentials OAuth client, when the environment names one."""
    client = os.environ.get("MCPOD_OAUTH_CLIENT")
    if not client:
        return None
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    client_id, secret = client.split(":", 1)
    return ClientCredentialsOAuthProvider(
        server_url=url,
        storage=Memory(),
        client_id=client_id,
        client_secret=secret,
        scopes=os.environ.get("MCPOD_OAUTH_SCOPES") or None,
        issuer=os.environ["MCPOD_OAUTH_ISSUER"],
    )


def over_unix_socket(path):
    """An httpx client factory whose connections go to the unix socket `path`."""
    import httpx
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

    def factory(headers=None, timeout=None, auth=None):
        timeout = timeout or httpx.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
        transport = httpx.AsyncHTTPTransport(uds=path)
        return httpx.AsyncClient(transport=transport, headers=headers, timeout=timeout, auth=auth)

    return factory


async def main(url, token, step, arg):
    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    client = DeclaringTasks if step.startswith("task") else ClientSession
    extra = {}
    if os.environ.get("MCPOD_UDS"):
        extra["httpx_client_factory"] = over_unix_socket(os.environ["MCPOD_UDS"])
    heard = {"tools": 0}

    async def on_message(message):
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            heard["tools"] += 1

    async with streamablehttp_client(url, headers=headers, auth=oauth(url), **extra) as (read, write, _):
        async with client(read, write, message_handler=on_message) as session:
            init = await session.initialize()
            out = {"server": init.serverInfo.name}
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            if step == "launch":
                launched = await session.call_tool("launch_session", {"image": arg})
                launched = structured(launched)
                out["session"] = launched["session"]
                greet = await session.call_tool(
                    f"{launched['session']}_hello__greet", {"name": "http"}
                )
                out["greet"] = structured(greet)["text"]
                listed = await session.list_tools()
                out["tools_after"] = sorted(t.name for t in listed.tools)
            elif step == "stop":
                out["stop"] = await refused_or(session.call_tool("stop_session", {"session": arg}))
            elif step == "call":
                out["call"] = await refused_or(
                    session.call_tool(
                        "call_tool",
                        {"session": arg, "server": "hello", "tool": "greet", "arguments": {"name": "x"}},
                    )
                )
                out["call_exported"] = await refused_or(
                    session.call_tool(f"{arg}_hello__greet", {"name": "x"})
                )
            elif step == "open":
                out["session"] = structured(await session.call_tool("launch_session", json.loads(arg)))["session"]
            elif step == "surface":
                out.update(await surface(session, arg))
            elif step == "task":
                name = f"{arg}_everything__trigger-long-running-operation"
                call = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments={"duration": 3, "steps": 3}))
                answer = await session.send_request(types.ClientRequest(call), types.Result)
                out["task"] = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
            elif step == "task_token":
                # A long task whose progress token is 2: the id the SDK gives a client's third
                # request, as in the `progress` step of another client.
                name = f"{arg}_everything__trigger-long-running-operation"
                params = types.CallToolRequestParams(
                    name=name, arguments={"duration": 10, "steps": 10}, _meta={"progressToken": 2}
                )
                answer = await session.send_request(types.ClientRequest(types.CallToolRequest(params=params)), types.Result)
                out["task"] = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
            elif step == "progress":
                seen = []

                async def heard(progress, total, message):
                    seen.append(progress)

                name = f"{arg}_everything__trigger-long-running-operation"
                await session.call_tool(name, {"duration": 2, "steps": 4}, progress_callback=heard)
                out["progress"] = len(seen)
            elif step == "task_reach":
                for method in ("get", "cancel"):
                    out[method] = await answered(session.send_request(task_request(method, arg), types.Result))
            elif step == "try":
                asked = json.loads(arg)
                out["result"] = await refused_or(session.call_tool(asked["tool"], asked.get("arguments", {})))
            elif step == "listen":
                # Say "ready", then count the tools/list_changed notifications heard until stdin
                # closes (at most ARG seconds).
                print("ready", flush=True)
                reading = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
                try:
                    await asyncio.wait_for(reading, float(arg))
                except asyncio.TimeoutError:
                    pass
                out["tools_list_changed"] = heard["tools"]
            elif step == "audit":
                out["audit"] = await refused_or(session.call_tool("read_audit", json.loads(arg or "{}")))
            listed = structured(await session.call_tool("list_sessions", {}))
            out["sessions"] = [s["session"] for s in listed["sessions"]]
            out["owners"] = [s.get("owner") for s in listed["sessions"]]
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
