"""Which token each Node joined with, from the kubelets' bootstrap CSRs: the parser against real
PKCS#10 requests (openssl) and hostile ones, the stand-in's CSRs, and joinkeeper-revoke-tokens
reporting the joins after revoking."""
import base64
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BIN, STANDINS
from contract import published

sys.path.insert(0, BIN)
sys.path.insert(0, STANDINS)
from joinkeeper_json.csrs import bootstrap_joins  # noqa: E402


def openssl_csr(tmp_path, subject):
    key = str(tmp_path / "key.pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], check=True)
    out = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", subject], check=True,
                         stdout=subprocess.PIPE).stdout
    return base64.b64encode(out).decode()


def item(request, username="system:bootstrap:abc123", signer="kubernetes.io/kube-apiserver-client-kubelet"):
    return {"spec": {"request": request, "username": username, "signerName": signer}}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a real CSR")
def test_a_real_kubelet_csr_names_its_token_and_node(tmp_path):
    real = openssl_csr(tmp_path, "/O=system:nodes/CN=system:node:ip-10-0-0-9.ec2.internal")
    other = openssl_csr(tmp_path, "/O=system:masters/CN=admin")
    hostile = openssl_csr(tmp_path, "/O=system:nodes/CN=system:node:a;rm -rf")
    garbage = base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n").decode()
    csrs = {"items": [
        item(real),
        item(real),  # the same join seen twice is one fact
        item(real, username="system:node:ip-10-0-0-9.ec2.internal"),  # a rotation, not a bootstrap
        item(real, signer="kubernetes.io/kube-apiserver-client"),
        item(other),
        item(hostile),
        item(garbage),
        item("not base64 !"),
        {"spec": "nonsense"},
        "nonsense",
    ]}
    assert bootstrap_joins(csrs) == [("abc123", "ip-10-0-0-9.ec2.internal")]
    assert bootstrap_joins({"items": "x"}) == [] and bootstrap_joins([]) == []


def test_the_standin_csr_reads_like_a_real_one():
    import standin_csr
    pem = standin_csr.node_csr_pem("ip-10-1-2-3")
    request = base64.b64encode(pem.encode()).decode()
    assert bootstrap_joins({"items": [item(request, "system:bootstrap:zz9999")]}) == [("zz9999", "ip-10-1-2-3")]
    if shutil.which("openssl"):
        proc = subprocess.run(["openssl", "req", "-noout", "-subject"], input=pem, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.returncode == 0, proc.stderr
        assert "system:node:ip-10-1-2-3" in proc.stdout


def test_revoke_reports_which_token_each_recent_node_joined_with(jk):
    old = published(jk.publish().stdout)[1]
    kubectl = os.path.join(STANDINS, "kubectl")
    jk.tool(kubectl, "x-standin", "add-csr", "intruder", "--token-id", old)
    jk.tool(kubectl, "x-standin", "add-csr", "ip-10-0-0-5", "--token-id", old)
    # Approved an hour ago: the CSR cleaner has deleted it, the join is no longer known.
    jk.tool(kubectl, "x-standin", "add-csr", "forgotten", "--token-id", old, "--age-seconds", "3700")
    jk.regenerate()
    current = published(jk.regenerate().stdout)[1]
    jk.tool(kubectl, "x-standin", "add-csr", "ip-10-0-0-6", "--token-id", current)

    proc = jk.run("joinkeeper-revoke-tokens", "--cluster", jk.cluster, "--prefix", jk.prefix,
                  "--keep-token-id", current)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    joined = [line for line in lines if line.startswith("joined ")]
    assert sorted(joined) == sorted([
        "joined token_id=%s node=intruder token=gone" % old,
        "joined token_id=%s node=ip-10-0-0-5 token=gone" % old,
        "joined token_id=%s node=ip-10-0-0-6 token=live" % current,
    ]), proc.stdout
    assert lines[-2] == "joins-seen 3"
    assert lines[-1].startswith("revoke-tokens cluster=%s kept=%s " % (jk.cluster, current))
    assert json.dumps(jk.state()).count("forgotten") == 0


def test_revoke_says_when_the_joins_are_unknown(jk, tmp_path):
    current = published(jk.publish().stdout)[1]
    # A kubectl that cannot reach the API (first on PATH, before the stand-in).
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "kubectl").write_text("#!/bin/sh\necho 'The connection to the server was refused' >&2\nexit 1\n")
    (broken / "kubectl").chmod(0o755)
    env = {"PATH": "%s:%s" % (broken, jk.full_env(None)["PATH"])}

    proc = jk.run("joinkeeper-revoke-tokens", "--cluster", jk.cluster, "--prefix", jk.prefix,
                  "--keep-token-id", current, env=env)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == [
        "joins unknown", "revoke-tokens cluster=%s kept=%s revoked=0" % (jk.cluster, current)]
    assert "could not read the certificate signing requests" in proc.stderr
