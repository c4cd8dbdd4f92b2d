"""The record batches of join mode per-instance (put-records, missing-records, delete-records), one
process each: the client's signature is checked against botocore's own Signature Version 4 signer
(the AWS CLI's), its retries and create-only semantics against a local HTTP server answering as
Parameter Store does."""
import datetime
import http.server
import json
import os
import subprocess
import sys
import threading

from conftest import BIN

sys.path.insert(0, BIN)
from joinkeeper_json import aws_client  # noqa: E402

CREDS = {"key": "AKIAIOSFODNN7EXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "token": ""}


def botocore_signed(url, headers, body, creds):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(creds["key"], creds["secret"], creds["token"] or None), "ssm", "eu-west-1").add_auth(request)
    when = datetime.datetime.strptime(request.context["timestamp"], "%Y%m%dT%H%M%SZ")
    return request.headers["Authorization"], when.replace(tzinfo=datetime.timezone.utc)


def test_the_signature_is_the_one_botocore_computes():
    body = json.dumps({"Name": "/joinkeeper/demo/join/i-0123456789abcdef0", "Type": "SecureString"}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.PutParameter"}
    for url in ("https://ssm.eu-west-1.amazonaws.com/", "http://127.0.0.1:4566/"):
        for creds in (CREDS, dict(CREDS, token="FwoGZXIvYXdzEXAMPLE//session+token=")):
            expected, when = botocore_signed(url, headers, body, creds)
            ours = aws_client.sign("POST", url, headers, body, creds, "eu-west-1", "ssm", when)
            assert ours["Authorization"] == expected, (url, bool(creds["token"]))
            assert ours.get("X-Amz-Security-Token", "") == creds["token"]


def test_endpoints_and_credentials_come_from_where_the_aws_cli_finds_them():
    assert aws_client.endpoint("eu-west-1", {}) == "https://ssm.eu-west-1.amazonaws.com/"
    assert aws_client.endpoint("cn-north-1", {}) == "https://ssm.cn-north-1.amazonaws.com.cn/"
    assert aws_client.endpoint("eu-west-1", {"AWS_ENDPOINT_URL": "http://x:1"}) == "http://x:1/"
    assert aws_client.endpoint("eu-west-1", {"AWS_ENDPOINT_URL": "http://x:1", "AWS_ENDPOINT_URL_SSM": "http://y:2/"}) == "http://y:2/"
    env = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert aws_client.credentials(env) == {"key": "AKID", "secret": "s", "token": "t"}
    # A profile is the AWS CLI's to resolve; IMDS switched off: nothing of its own.
    assert aws_client.credentials({"AWS_PROFILE": "ops"}) is None
    assert aws_client.credentials({"AWS_EC2_METADATA_DISABLED": "true"}) is None


class FakeParameterStore(http.server.BaseHTTPRequestHandler):
    """Parameter Store's JSON protocol: throttles the first call, keeps parameters create-only."""
    params, puts, calls, throttled = {}, {}, [], [False]

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        op = self.headers["X-Amz-Target"].split(".")[1]
        self.calls.append((op, body["Name"], self.headers.get("User-Agent", ""),
                           self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 Credential=AKID/")))
        if not self.throttled[0]:
            self.throttled[0] = True
            return self.answer(400, {"__type": "com.amazonaws.ssm#ThrottlingException", "message": "Rate exceeded"})
        if op == "DeleteParameter":
            self.params.pop(body["Name"], None)
            return self.answer(200, {})
        if body["Name"] in self.params and not body.get("Overwrite"):
            return self.answer(400, {"__type": "ParameterAlreadyExists"})
        if body["Name"].endswith("/i-0000000d"):
            return self.answer(400, {"__type": "AccessDeniedException"})
        self.params[body["Name"]] = body["Value"]
        self.puts[body["Name"]] = body
        return self.answer(200, {"Version": 1, "Tier": "Standard"})

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_records_are_written_from_one_process_retrying_throttling_and_replacing_leftovers(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeParameterStore)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ids = ["i-0000000a", "i-0000000b", "i-0000000c", "i-0000000d"]
    for n, i in enumerate(ids):
        (tmp_path / (i + ".join")).write_text(
            "kubeadm join 10.0.0.1:6443 --token abcde%d.0123456789abcdef --discovery-token-ca-cert-hash sha256:%s\n"
            % (n, "ab" * 32))
    (tmp_path / "i-0000000f.join").write_text("not a join command\n")
    FakeParameterStore.params["/joinkeeper/demo/join/i-0000000b"] = "left by an expired token"
    env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:%d" % server.server_address[1],
               AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="eu-west-1",
               AWS_SDK_UA_APP_ID="demo-control-plane-role")
    try:
        out = subprocess.run([sys.executable, os.path.join(BIN, "joinkeeper-json.py"), "put-records",
                              "--dir", str(tmp_path), "--ids", " ".join(ids + ["i-0000000e", "i-0000000f"]),
                              "--cluster", "demo", "--ttl-seconds", "600", "--name-prefix", "/joinkeeper/demo/join/",
                              "--arn-base", "arn:aws:ec2:eu-west-1:123456789012:instance", "--parallel", "2"],
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    lines = sorted(out.stdout.split("\n")[:-1])
    assert lines == ["failed i-0000000d AccessDeniedException", "failed i-0000000e unreadable-input",
                     "failed i-0000000f unreadable-input",
                     "written i-0000000a", "written i-0000000b", "written i-0000000c"]
    assert "abcde" not in out.stdout + out.stderr and "0123456789abcdef" not in out.stdout + out.stderr
    record = json.loads(FakeParameterStore.params["/joinkeeper/demo/join/i-0000000b"])
    assert record["token_id"] == "abcde1" and record["cluster"] == "demo", "the leftover was replaced"
    assert FakeParameterStore.puts["/joinkeeper/demo/join/i-0000000a"]["Tags"] == [
        {"Key": "joinkeeper:instance", "Value": "arn:aws:ec2:eu-west-1:123456789012:instance/i-0000000a"},
        {"Key": "joinkeeper:cluster", "Value": "demo"}]
    assert ("DeleteParameter", "/joinkeeper/demo/join/i-0000000b") in [c[:2] for c in FakeParameterStore.calls]
    assert all(c[3] and c[2].endswith("app/demo-control-plane-role") for c in FakeParameterStore.calls)


def test_without_credentials_of_its_own_it_leaves_the_write_to_the_aws_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_REGION="eu-west-1")
    out = subprocess.run([sys.executable, os.path.join(BIN, "joinkeeper-json.py"), "put-records",
                          "--dir", str(tmp_path), "--ids", "i-0000000a", "--cluster", "demo", "--ttl-seconds", "600",
                          "--name-prefix", "/joinkeeper/demo/join/",
                          "--arn-base", "arn:aws:ec2:eu-west-1:123456789012:instance"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == aws_client.NO_CREDENTIALS and out.stdout == ""
