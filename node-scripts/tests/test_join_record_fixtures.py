"""The join record's golden fixtures (tests/fixtures/join-record/), which the core crate's
record.rs reads too: joinkeeper-json.py gives every stored record and every output of the mint
step the verdict written in cases.json, and builds the same canonical record from each valid
output. No emulator needed."""
import json
import os
import subprocess
import sys

import pytest

from contract import FIXTURES, JSON_HELPER

FAKE_SECRET = "0123456789abcdef"

with open(os.path.join(FIXTURES, "cases.json")) as _fh:
    CASES = json.load(_fh)


def read(name):
    with open(os.path.join(FIXTURES, name)) as fh:
        return fh.read()


def helper(args, text):
    return subprocess.run([sys.executable, JSON_HELPER] + args, input=text, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


@pytest.mark.parametrize("case", CASES["records"], ids=lambda c: c["file"])
def test_stored_record(case):
    proc = helper(["check-record"], read(case["file"]))
    assert proc.returncode == (0 if case["valid"] else 3), (case["why"], proc.stderr)
    assert FAKE_SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("case", CASES["commands"], ids=lambda c: c["file"])
def test_mint_output(case):
    build = CASES["build"]
    proc = helper(["build-record", "--cluster", build["cluster"], "--source", case["source"],
                   "--created-at", build["created_at"],
                   "--expires-at", build["expires_at"][case["source"]]], read(case["file"]))
    if case["valid"]:
        assert proc.returncode == 0, (case["why"], proc.stderr)
        assert proc.stdout == read(case["record"])
    else:
        assert proc.returncode == 3 and proc.stdout == "", case["why"]
        assert FAKE_SECRET not in proc.stderr


def test_every_fixture_has_a_verdict():
    listed = {c["file"] for c in CASES["records"] + CASES["commands"]}
    present = set(os.listdir(FIXTURES)) - {"cases.json", "README.md"}
    assert listed == present
