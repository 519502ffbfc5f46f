"""Many MCP clients over Streamable HTTP at once, from one process (the Python SDK's client under
asyncio), for tests/http_load.rs.

    http_load.py URL IMAGE TOKENS_FILE

TOKENS_FILE holds one bearer token a line: client i uses line i. Every client connects, and all
at once: initialize, launch_session of IMAGE, its session's greet tool, tools/list and
list_sessions. Then one JSON line on stdout, a list with each client's {"session", "greet",
"tools", "sessions"} (or {"error"}), in the file's order; and the clients keep their MCP sessions
open while the script reads commands from stdin, a line each:

    call I J ...   clients I, J, ... at once: greet again, tools/list, list_sessions (one JSON
                   line: {"I": {...}, ...})
    end            close every client (one JSON line: each client's error on closing, if any)
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

# Generous: 50 launches at once on two cores queue on podman's locks.
TIMEOUT = 600


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def visit(session, sid, name):
    """What one client sees: its greet's text, the tools listed, the sessions listed."""
    greet = await session.call_tool(f"{sid}_hello__greet", {"name": name})
    tools = sorted(t.name for t in (await session.list_tools()).tools)
    listed = (await session.call_tool("list_sessions", {})).structuredContent or {}
    return {
        "session": sid,
        "greet": text_of(greet),
        "greet_error": bool(greet.isError),
        "tools": tools,
        "sessions": [s["session"] for s in listed.get("sessions", [])],
    }


async def client(i, url, token, image, inbox, answers):
    """One client's life: launch and visit, then a visit per command until None; every answer,
    and at the end `closed` or the error that ended it, goes to `answers`."""
    headers = {"Authorization": f"Bearer {token}"}
    sid = None
    try:
        async with streamablehttp_client(url, headers=headers, timeout=TIMEOUT) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                launched = await session.call_tool("launch_session", {"image": image})
                if launched.isError or not launched.structuredContent:
                    await answers.put({"error": f"launch_session: {text_of(launched)}"})
                else:
                    sid = launched.structuredContent["session"]
                    await answers.put(await visit(session, sid, f"c{i}"))
                while await inbox.get() is not None:
                    try:
                        await answers.put(await visit(session, sid, f"c{i}"))
                    except Exception as e:  # noqa: BLE001 - reported, the test decides
                        await answers.put({"error": repr(e)})
    except Exception as e:  # noqa: BLE001
        await answers.put({"error": repr(e), "session": sid})
        return
    await answers.put({"closed": True})


async def answer_of(task, answers):
    """The next answer of a client, or that it ended before (its last answer already taken)."""
    if task.done() and answers.empty():
        return {"error": "it had ended before"}
    return await asyncio.wait_for(answers.get(), TIMEOUT)


async def main(url, image, tokens_file):
    with open(tokens_file) as f:
        tokens = [line.strip() for line in f if line.strip()]
    inboxes = [asyncio.Queue() for _ in tokens]
    answers = [asyncio.Queue() for _ in tokens]
    tasks = [
        asyncio.create_task(client(i, url, t, image, inboxes[i], answers[i]))
        for i, t in enumerate(tokens)
    ]
    first = await asyncio.gather(*(answer_of(tasks[i], answers[i]) for i in range(len(tokens))))
    print(json.dumps(first), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "end":
            break
        if line[0] != "call":
            print(json.dumps({"error": f"unknown command {line[0]!r}: call I... or end"}), flush=True)
            continue
        chosen = [int(i) for i in line[1:]]
        for i in chosen:
            await inboxes[i].put("call")
        got = await asyncio.gather(*(answer_of(tasks[i], answers[i]) for i in chosen))
        print(json.dumps({str(i): a for i, a in zip(chosen, got)}), flush=True)
    for inbox in inboxes:
        await inbox.put(None)
    ended = await asyncio.gather(*(answer_of(tasks[i], answers[i]) for i in range(len(tokens))))
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({str(i): a for i, a in enumerate(ended)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
