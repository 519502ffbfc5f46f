"""A transparent stdio tap: `python wiretap.py LOG -- COMMAND ARGS...`.

Runs COMMAND with its stdin/stdout piped through this process, unchanged, and appends every
line to LOG as JSON: {"t": seconds since start, "dir": ">" (client to server) or "<" (server to
client), "msg": the parsed JSON-RPC message (or "raw": the text if it does not parse)}.
COMMAND's stderr is inherited. When the client closes stdin, COMMAND's stdin is closed and the
tap waits for COMMAND to exit (so mcpod can remove its containers), then exits with its code.
SIGTERM and SIGINT are passed on to COMMAND.

The tests use the log to see what the SDK under test really sent (was `notifications/cancelled`
sent, with which id?) and what mcpod answered, in order.
"""

import json
import signal
import subprocess
import sys
import threading
import time


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: wiretap.py LOG -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    log_path, command = sys.argv[1], sys.argv[3:]
    start = time.monotonic()
    lock = threading.Lock()
    log = open(log_path, "a", encoding="utf-8")

    def record(direction: str, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            return
        entry: dict = {"t": round(time.monotonic() - start, 4), "dir": direction}
        try:
            entry["msg"] = json.loads(text)
        except ValueError:
            entry["raw"] = text
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def pump_in() -> None:
        stdin = sys.stdin.buffer
        try:
            for line in iter(stdin.readline, b""):
                record(">", line)
                child.stdin.write(line)
                child.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                child.stdin.close()
            except OSError:
                pass

    def pump_out() -> None:
        stdout = sys.stdout.buffer
        for line in iter(child.stdout.readline, b""):
            record("<", line)
            try:
                stdout.write(line)
                stdout.flush()
            except (BrokenPipeError, OSError):
                pass

    threading.Thread(target=pump_in, daemon=True).start()
    out = threading.Thread(target=pump_out, daemon=True)
    out.start()
    code = child.wait()
    out.join(timeout=5)
    log.close()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
