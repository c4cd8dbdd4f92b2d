"""The HA certificate key: written only to Parameter Store, deleted once the control planes have
joined, and minted again on a healthy control plane (document joinkeeper-upload-certs, run by
the emulator's Run Command) when a control plane joins after the first key has expired — the
stand-in kubeadm keeps uploaded certificates for 2 hours, as kubeadm does."""
import json
import os
import re
import time

from conftest import NODE_SCRIPTS, VENV_BIN
from contract import epoch

AWS = os.path.join(VENV_BIN, "aws")
DOCUMENT = "joinkeeper-upload-certs"
KEY = re.compile(r"[0-9a-f]{64}")


class Cluster:
    """An HA cluster in the emulator: control-plane instances tagged for it, whose Run Command
    scripts share the stand-in cluster state with the test."""

    def __init__(self, jk, emulator):
        self.jk = jk
        jk.kube = os.path.join(emulator["state"], "clusters", jk.cluster)
        os.makedirs(jk.kube, exist_ok=True)
        jk.env["JOINKEEPER_KUBE_STATE"] = jk.kube
        self.param = "%s/%s/control-plane-join" % (jk.prefix, jk.cluster)
        proc = jk.tool(AWS, "ssm", "create-document", "--name", DOCUMENT, "--document-type", "Command",
                       "--document-format", "JSON", "--content",
                       "file://" + os.path.join(NODE_SCRIPTS, "documents", DOCUMENT + ".json"), check=False)
        assert proc.returncode == 0 or "DocumentAlreadyExists" in proc.stderr, proc.stderr

    def launch_control_plane(self):
        tags = "ResourceType=instance,Tags=[{Key=joinkeeper:cluster,Value=%s},{Key=joinkeeper:role,Value=control-plane}]"
        out = self.jk.tool(AWS, "ec2", "run-instances", "--image-id", "ami-12c6146b", "--count", "1",
                           "--tag-specifications", tags % self.jk.cluster, "--output", "json").stdout
        return json.loads(out)["Instances"][0]["InstanceId"]

    def as_control_plane(self, instance_id):
        return {"AWS_SDK_UA_APP_ID": "control-plane", "JOINKEEPER_INSTANCE_ID": instance_id,
                "JOINKEEPER_PRIVATE_DNS": "ip-10-0-0-%d.ec2.internal" % (int(instance_id[-2:], 16) % 250 + 1)}

    def stored(self, instance_id):
        """The certificate key parameter, read as a control plane reads it (None when absent)."""
        proc = self.jk.tool(AWS, "ssm", "get-parameter", "--name", self.param, "--with-decryption",
                            "--output", "json", env=self.as_control_plane(instance_id), check=False)
        if proc.returncode != 0:
            assert "ParameterNotFound" in proc.stderr, proc.stderr
            return None
        value = json.loads(json.loads(proc.stdout)["Parameter"]["Value"])
        self.jk.extra_secrets.add(value["certificate_key"])
        return value

    def join_control_plane(self, instance_id, key):
        """kubeadm join --control-plane as the user data does it: the key in a 0600 config file."""
        record = self.jk.record()
        path = os.path.join(str(self.jk.root), "join-%s.yaml" % instance_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n"
                     "  bootstrapToken:\n    apiServerEndpoint: \"%s\"\n    token: \"%s.%s\"\n"
                     "    caCertHashes: [\"%s\"]\ncontrolPlane:\n  certificateKey: \"%s\"\n"
                     % (record["endpoint"], record["token_id"], record["token_secret"],
                        record["ca_cert_hash"], key))
        proc = self.jk.tool("kubeadm", "join", "--config", path, env=self.as_control_plane(instance_id), check=False)
        os.remove(path)
        return proc

    def control_plane_nodes(self):
        return sorted(n for n, node in self.jk.state()["nodes"].items() if node.get("role") == "control-plane")


def test_replacement_control_plane_joins_after_the_first_key_expired(jk, emulator):
    c = Cluster(jk, emulator)
    first = c.launch_control_plane()

    # Day 0, the first control plane's user data: kubeadm init, a fresh key to Parameter Store
    # (never on stdout), then the record.
    jk.tool("kubeadm", "init", env=c.as_control_plane(first))
    upload = jk.run("joinkeeper-upload-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, env=c.as_control_plane(first))
    assert upload.returncode == 0, upload.stderr
    key1 = c.stored(first)
    assert KEY.fullmatch(key1["certificate_key"])
    assert key1["certificate_key"] not in upload.stdout + upload.stderr
    assert upload.stdout.splitlines()[-1] == "uploaded cluster=%s expires_at=%s" % (jk.cluster, key1["expires_at"])
    assert 7100 <= epoch(key1["expires_at"]) - int(time.time()) <= 7200
    assert key1["uploaded_by"] == first and key1["kubernetes_version"].startswith("v1.")
    jk.publish(env=c.as_control_plane(first))

    # A peer joins the same day: the key is valid, nobody is asked for another one.
    peer = "i-0aaaaaaaaaaaaaa01"
    request = jk.run("joinkeeper-request-certs", "--cluster", jk.cluster, "--prefix", jk.prefix,
                     "--document", DOCUMENT, "--deadline-seconds", "60", env=c.as_control_plane(peer))
    assert request.returncode == 0, request.stderr
    assert request.stdout.splitlines()[-1] == "certificate-key ready cluster=%s expires_at=%s" % (jk.cluster, key1["expires_at"])
    assert "asking" not in request.stderr
    joined = c.join_control_plane(peer, c.stored(peer)["certificate_key"])
    assert joined.returncode == 0, joined.stderr
    forget = jk.run("joinkeeper-forget-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, env=c.as_control_plane(peer))
    assert forget.returncode == 0 and forget.stdout.splitlines()[-1] == "forgot cluster=%s" % jk.cluster
    assert c.stored(peer) is None, "the key leaves Parameter Store once the control planes joined"
    again = jk.run("joinkeeper-forget-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, env=c.as_control_plane(first))
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "already-gone cluster=%s" % jk.cluster

    # Two hours later kubeadm has deleted the uploaded certificates: the first key is worthless.
    jk.tool("kubeadm", "x-standin", "expire-certificate-key")
    late = "i-0bbbbbbbbbbbbbb02"
    stale = c.join_control_plane(late, key1["certificate_key"])
    assert stale.returncode != 0 and "This Secret might have expired" in stale.stderr
    assert late not in " ".join(c.control_plane_nodes())

    # Even a leftover parameter holding the expired key (say a forget that failed) is not used.
    leftover = dict(key1, created_at="2020-01-01T00:00:00Z", expires_at="2020-01-01T02:00:00Z")
    put = os.path.join(str(jk.root), "put.json")
    with open(put, "w") as fh:
        json.dump({"Name": c.param, "Type": "SecureString", "Overwrite": True, "Value": json.dumps(leftover)}, fh)
    jk.tool(AWS, "ssm", "put-parameter", "--cli-input-json", "file://" + put, env=c.as_control_plane(first))
    os.remove(put)

    # The replacement asks the healthy control plane (Run Command, joinkeeper-upload-certs)...
    request = jk.run("joinkeeper-request-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, "--document", DOCUMENT,
                     "--deadline-seconds", "120", env=dict(c.as_control_plane(late), JOINKEEPER_REQUEST_POLL_SECONDS="1"))
    assert request.returncode == 0, request.stderr
    assert "asking control plane %s for a fresh certificate key" % first in request.stderr
    key2 = c.stored(late)
    assert key2["certificate_key"] != key1["certificate_key"] and key2["uploaded_by"] == first
    assert 7000 <= epoch(key2["expires_at"]) - int(time.time()) <= 7200
    assert request.stdout.splitlines()[-1] == "certificate-key ready cluster=%s expires_at=%s" % (jk.cluster, key2["expires_at"])
    invocations = json.loads(jk.tool(AWS, "ssm", "list-command-invocations", "--instance-id", first, "--details",
                                     "--output", "json").stdout)["CommandInvocations"]
    outputs = [i for i in invocations if i["DocumentName"] == DOCUMENT]
    assert len(outputs) == 1 and outputs[0]["Status"] == "Success"
    plugin = outputs[0]["CommandPlugins"][0]["Output"]
    assert "uploaded cluster=%s" % jk.cluster in plugin and key2["certificate_key"] not in plugin

    # ...and joins with the fresh key, then forgets it.
    joined = c.join_control_plane(late, key2["certificate_key"])
    assert joined.returncode == 0, joined.stderr
    assert jk.state()["nodes"][c.as_control_plane(late)["JOINKEEPER_PRIVATE_DNS"]]["role"] == "control-plane"
    forget = jk.run("joinkeeper-forget-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, env=c.as_control_plane(late))
    assert forget.returncode == 0 and c.stored(late) is None


def test_forget_waits_for_the_peers_then_deletes_after_its_bound(jk):
    param = "%s/%s/control-plane-join" % (jk.prefix, jk.cluster)
    jk.tool(AWS, "ssm", "put-parameter", "--name", param, "--type", "String", "--value", "{}")
    started = time.time()
    proc = jk.run("joinkeeper-forget-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, "--wait-seconds", "3",
                  env={"JOINKEEPER_FORGET_POLL_SECONDS": "1"})
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "forgot cluster=%s" % jk.cluster
    assert 3 <= time.time() - started < 30
    assert jk.tool(AWS, "ssm", "get-parameter", "--name", param, check=False).returncode != 0


def test_request_gives_up_at_its_deadline_while_the_cluster_has_no_record(jk):
    proc = jk.run("joinkeeper-request-certs", "--cluster", jk.cluster, "--prefix", jk.prefix, "--deadline-seconds", "2",
                  env={"JOINKEEPER_REQUEST_POLL_SECONDS": "1"})
    assert proc.returncode == 1
    assert "no join record yet" in proc.stderr and "by the deadline" in proc.stderr
    for bad in (["--cluster", "a b"], ["--cluster", "c", "--document", "x;id"], ["--cluster", "c", "--deadline-seconds", "0"]):
        assert jk.run("joinkeeper-request-certs", *bad).returncode == 2
