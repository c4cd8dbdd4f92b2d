"""The one redaction routine (jk_redact in joinkeeper-lib.sh) and the file modes the scripts
create under umask 077."""
import glob
import os
import re
import stat
import subprocess

from conftest import BIN

KEY = "3f2a9c0d4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
HASH = "sha256:" + "ab" * 32
TOKEN = "k3xq9z.p2m7r4t8w1y6v5n0"


def redact(text):
    proc = subprocess.run(["bash", "-c", 'source "$1"; jk_redact', "redact", os.path.join(BIN, "joinkeeper-lib.sh")],
                          input=text, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    return proc.stdout


def test_every_secret_shape_is_redacted_and_the_ca_hash_is_kept():
    samples = [
        "kubeadm join 10.0.0.1:6443 --token %s --discovery-token-ca-cert-hash %s" % (TOKEN, HASH),
        "kubeadm join 10.0.0.1:6443 --token %s --control-plane --certificate-key %s" % (TOKEN, KEY),
        "--certificate-key=%s" % KEY,
        "curl -fsSL https://kurl.sh/x/join.sh | sudo bash -s kubeadm-token=%s kubeadm-token-ca-hash=%s "
        "cert-key=%s control-plane" % (TOKEN, HASH, KEY),
        "cert_key=%s" % KEY,
        '{"token_secret": "%s", "certificate_key": "%s"}' % (TOKEN.split(".")[1], KEY),
        '  certificateKey: "%s"' % KEY,
        "    certKey: %s" % KEY,
        "[upload-certs] Using certificate key:",
        KEY,
        "key(%s)" % KEY.upper(),
        "token-secret=%s" % TOKEN.split(".")[1],
        "    token: \"%s\"" % TOKEN,
    ]
    out = redact("\n".join(samples) + "\n")
    assert TOKEN not in out and TOKEN.split(".")[1] not in out
    assert KEY not in out and KEY.upper() not in out
    assert not re.search(r"[0-9a-fA-F]{64}", out.replace(HASH, ""))
    assert out.count(HASH) == 2, "the CA certificate hash is public and stays readable"
    assert len(out.splitlines()) == len(samples)
    assert "<redacted" in out.splitlines()[9]


def test_ordinary_output_passes_unchanged():
    text = ("[init] Using Kubernetes version: v1.30.4\nnode/ip-10-0-1-5.ec2.internal cordoned\n"
            "image registry.k8s.io/pause@%s\npublished cluster=demo token_id=k3xq9z expires_at=2026-11-27T02:00:00Z\n"
            % HASH)
    assert redact(text) == text


def test_scripts_print_command_output_only_through_jk_redact():
    # A captured output file reaches stderr/stdout only as `jk_redact <file | tail ...`.
    for path in glob.glob(os.path.join(BIN, "joinkeeper-*")):
        if path.endswith((".py", ".sh")):
            continue
        with open(path) as fh:
            for number, line in enumerate(fh, 1):
                code, _, comment = line.partition("#")
                if "own output" in comment:
                    continue  # lines the script's own helper wrote, not a command's output
                if re.search(r"\b(tail|cat|head)\b", code) and "$JK_TMP" in code:
                    assert "jk_redact" in code, "%s:%d prints captured output without jk_redact" % (path, number)


def test_scripts_run_under_umask_077(tmp_path):
    proc = subprocess.run(["bash", "-c", 'umask 022; source "$1"; umask; touch "$2"', "x",
                           os.path.join(BIN, "joinkeeper-lib.sh"), str(tmp_path / "f")],
                          stdout=subprocess.PIPE, text=True, check=True)
    assert proc.stdout.strip() == "0077"
    assert stat.S_IMODE(os.stat(str(tmp_path / "f")).st_mode) == 0o600


def test_join_log_is_0600_in_a_0700_folder(jk):
    logs = os.path.join(str(jk.root), "private-log")
    env = jk.node_env("i-0aaaaaaaaaaaaaa77")
    env["JOINKEEPER_LOG_DIR"] = logs
    env["JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS"] = "1"
    proc = jk.run("joinkeeper-join", "--cluster", jk.cluster, "--deadline-seconds", "10", env=env)
    assert proc.returncode == 1  # no record: gives up at the deadline
    assert stat.S_IMODE(os.stat(logs).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(logs, "joinkeeper-join.log")).st_mode) == 0o600
