"""Fixtures of the emulator tests: one emulator for the session (recording every AWS call it
serves), and per test an account of its own."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import Aws

EMULATOR = Path(__file__).resolve().parent.parent / "joinkeeper_emulator.py"


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
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EMULATOR),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state-dir",
            str(state),
            "--scripts-dir",
            str(scripts_dir),
            "--record-calls",
            str(state / "calls.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=open(state / "emulator.log", "wb"),
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("ready http://127.0.0.1:"), line
    yield {
        "url": line.split()[1],
        "state": state,
        "scripts": scripts_dir,
        "calls": state / "calls.jsonl",
    }
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def aws(emulator: dict) -> Aws:
    return Aws(emulator)
