"""The join record contract (docs/contracts.md), checked field by field as strictly as the core
crate's JoinRecord::from_json (shared/src/record.rs): exact field set, version 1, cluster name,
source, host:port endpoint, token id/secret, lowercase sha256 hash, RFC 3339 UTC second-precision
timestamps with Z, expires_at after created_at."""
import calendar
import re
import time

KEYS = ["version", "cluster", "source", "endpoint", "token_id", "token_secret", "ca_cert_hash",
        "created_at", "expires_at"]
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
PUBLISHED = re.compile(r"published cluster=(\S+) token_id=([a-z0-9]{6}) expires_at=(\S+)")


def epoch(ts):
    assert TS.fullmatch(ts), ts
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def endpoint_ok(endpoint):
    host, _, port = endpoint.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        return False
    if host.startswith("["):
        return re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", host) is not None
    return len(host) <= 253 and all(re.fullmatch(r"[A-Za-z0-9-]{1,63}", p) for p in host.split("."))


def check_record(record, cluster, source="kubeadm"):
    assert list(record) == KEYS, "fields (and their order) differ from the contract: %s" % list(record)
    assert record["version"] == 1 and type(record["version"]) is int
    assert record["cluster"] == cluster
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", record["cluster"])
    assert record["source"] == source
    assert endpoint_ok(record["endpoint"]), record["endpoint"]
    assert re.fullmatch(r"[a-z0-9]{6}", record["token_id"])
    assert re.fullmatch(r"[a-z0-9]{16}", record["token_secret"])
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", record["ca_cert_hash"])
    created, expires = epoch(record["created_at"]), epoch(record["expires_at"])
    assert expires > created
    return created, expires


def published(stdout):
    """The contract's last line of publish/regenerate output, as (cluster, token_id, expires_at)."""
    lines = stdout.strip().splitlines()
    assert lines, "no output"
    m = PUBLISHED.fullmatch(lines[-1])
    assert m, "last line is not the published line: %r" % lines[-1][:80]
    epoch(m.group(3))
    return m.groups()
