"""Shared set-up for tests/interop (see mcpod_client.py for the connection helper)."""

import pytest

from mcpod_client import MCPOD, SDK_VERSION


def pytest_report_header(config):
    return f"mcp (Python SDK) {SDK_VERSION}; mcpod binary {MCPOD}"


@pytest.fixture(autouse=True, scope="session")
def _mcpod_is_built():
    if not MCPOD.is_file():
        pytest.exit(f"{MCPOD} is missing: run `cargo build --bin mcpod` (tests/interop/run does)", returncode=2)
