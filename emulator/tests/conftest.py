"""Fixtures of the emulator tests: one emulator for the session (recording every AWS call it
serves), and per test an account of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import launch  # noqa: E402  (emulator/launch.py; the test modules import it too)
from support import Aws  # noqa: E402


@pytest.fixture(scope="session")
def scripts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small node-scripts folder: /opt/joinkeeper/bin/jk-hello maps to it."""
    root = tmp_path_factory.mktemp("node-scripts")
    (root / "bin").mkdir()
    (root / "standins").mkdir()
    hello = root / "bin" / "jk-hello"
    hello.write_text('#!/usr/bin/env bash\necho "hello $1 from $JOINKEEPER_INSTANCE_ID"\n')
    hello.chmod(0o755)
    standin = root / "standins" / "jk-standin"
    standin.write_text("#!/usr/bin/env bash\necho standin-on-path\n")
    standin.chmod(0o755)
    return root


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory, scripts_dir: Path):
    state = tmp_path_factory.mktemp("state")
    calls = state / "calls.jsonl"
    with launch.start(state, scripts_dir=scripts_dir, record_calls=calls, python=sys.executable) as emu:
        yield {"url": emu.url, "state": state, "scripts": scripts_dir, "calls": calls}


@pytest.fixture
def aws(emulator: dict) -> Aws:
    return Aws(emulator)
