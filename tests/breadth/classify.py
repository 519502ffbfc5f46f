"""The failure classes of issue 24, derived from an error text by the rules below, in one place.

`classify(text)` returns (class, rule): the first rule whose pattern matches the text wins, so the
order says which evidence is the stronger (a missing shared library is class 5 even when the file
that needs it is a `.node` addon; an EROFS is class 8 whatever else the traceback says). No rule
matching is `other`. The classes:

  1 platform binaries   per-platform optional dependencies (esbuild / napi-rs pattern) not staged
  2 bytecode            compileall failing the provision
  3 native addon        a `.node` addon that was never built, or a Python sdist with no wheel
  4 runtime version     the package asks for a newer node or Python than the base has
  5 missing library     an ELF file needs a shared library the base lacks
  6 system program      the server runs a program the image lacks (git, ...)
  7 dependency drift    today's dependencies break an older package (import / attribute errors)
  8 writes beside code  the server writes into its own tree on the read-only root
  network-needed        the server tried the network at start (DNS, connect)
  timeout               no answer within the deadline (handshake or the run's own)
  other                 anything else, e.g. mcpod's handshake failing on a late server/discover answer
"""

from __future__ import annotations

import re

# (class, rule name, pattern). Case-sensitive unless the pattern says (?i) or (?i:...).
RULES: list[tuple[str, str, str]] = [
    # mcpod's handshake, not the package: rmcp's Auto lifecycle gives `server/discover` 10 s, then
    # sends `initialize`; a server slower than that (a loaded machine) answers the probe late.
    ("other", "late server/discover answer", r"conflict initialized response id|uncorrelated error response"),
    # The host, not the package: provisioning ran out of disk.
    ("other", "host disk full", r"(?i:no space left on device)|ENOSPC"),
    ("8 writes beside code", "EROFS", r"EROFS|\[Errno 30\]|Read-only file system"),
    ("2 bytecode", "compileall", r"compileall"),
    ("5 missing library", "ld.so", r"error while loading shared libraries|cannot open shared object file|version `GLIBC_[0-9.]+' not found"),
    ("1 platform binaries", "npm lock lacks a platform package", r"Missing: \S+ from lock file"),
    ("1 platform binaries", "platform package not found", r"Cannot find (?:module|package) '(?:@[\w.-]+/)?[\w.-]*(?:linux|darwin|win32|freebsd)[\w.-]*'"),
    ("1 platform binaries", "npm ci usage text", r"(?s)npm ci.*Usage:|npm ci` can only install packages when"),
    ("4 runtime version", "node builtin missing", r"ERR_UNKNOWN_BUILTIN_MODULE|No such built-in module"),
    ("4 runtime version", "engines", r"(?i)unsupported engine|engines\.node|\"engines\"|The engine \"node\" is incompatible"),
    ("4 runtime version", "Requires-Python", r"(?i)requires-python|require a different python version|requires python"),
    ("3 native addon", "bindings", r"Could not locate the bindings file|\.node'|\.node\b.*(?:not found|ENOENT)|node-gyp|NODE_MODULE_VERSION|prebuild"),
    ("3 native addon", "no wheel", r"No matching distribution found|from versions: none"),
    ("6 system program", "spawn ENOENT", r"spawn \S+ ENOENT|(?i:command not found)|Bad git executable|executable .{0,40} not found"),
    ("6 system program", "missing program", r"FileNotFoundError: \[Errno 2\] No such file or directory: '[\w.-]+'"),
    ("7 dependency drift", "import/attribute", r"AttributeError|ModuleNotFoundError: No module named '\w+\.[\w.]+'|ImportError: cannot import name|does not provide an export named|ERR_PACKAGE_PATH_NOT_EXPORTED|is not a function"),
    ("network-needed", "resolve/connect", r"ENOTFOUND|EAI_AGAIN|getaddrinfo|Temporary failure in name resolution|Name or service not known|ECONNREFUSED|ENETUNREACH|Network is unreachable|Connection refused|fetch failed|(?i:failed to resolve)|nodename nor servname"),
    ("timeout", "deadline", r"(?i)did not answer `?initialize`? within|handshake.{0,40}(?:timed out|deadline)|timed out|deadline"),
]

_COMPILED = [(cls, name, re.compile(pattern)) for cls, name, pattern in RULES]


def classify(text: str) -> tuple[str, str]:
    """The class of a failure from its error text, and the rule that said so."""
    for cls, name, pattern in _COMPILED:
        if pattern.search(text):
            return cls, name
    return "other", "no rule matched"


def evidence(text: str) -> str:
    """The line of `text` the deciding rule matched (else the first non-empty line), trimmed."""
    for _cls, _name, pattern in _COMPILED:
        m = pattern.search(text)
        if m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = end if end >= 0 else len(text)
            # A long line (a host command's message) is cut to a window around the match.
            start, end = max(start, m.start() - 200), min(end, m.end() + 200)
            return text[start:end].strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:400]
    return ""
