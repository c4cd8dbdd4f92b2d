"""The join record contract (docs/contracts.md). The format itself is pinned by the golden
fixtures in tests/fixtures/join-record/ (test_join_record_fixtures.py here, and the core crate's
record.rs): a record the scripts wrote is checked with the helper those fixtures pin, in the
canonical fixture's field order."""
import calendar
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "join-record")
JSON_HELPER = os.path.join(REPO, "node-scripts", "bin", "joinkeeper-json.py")
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
PUBLISHED = re.compile(r"published cluster=(\S+) token_id=([a-z0-9]{6}) expires_at=(\S+)")

with open(os.path.join(FIXTURES, "record-kubeadm.json")) as _fh:
    KEYS = list(json.loads(_fh.read()))


def epoch(ts):
    assert TS.fullmatch(ts), ts
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def check_record(record, cluster, source="kubeadm"):
    assert list(record) == KEYS, "fields (and their order) differ from the contract: %s" % list(record)
    assert record["cluster"] == cluster
    assert record["source"] == source
    proc = subprocess.run([sys.executable, JSON_HELPER, "check-record", "--cluster", cluster],
                          input=json.dumps(record), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    created, expires = epoch(record["created_at"]), epoch(record["expires_at"])
    return created, expires


def published(stdout):
    """The contract's last line of publish/regenerate output, as (cluster, token_id, expires_at)."""
    lines = stdout.strip().splitlines()
    assert lines, "no output"
    m = PUBLISHED.fullmatch(lines[-1])
    assert m, "last line is not the published line: %r" % lines[-1][:80]
    epoch(m.group(3))
    return m.groups()
