"""A Parameter Store client of the node scripts' own, for batches: one process signs its calls
(Signature Version 4,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html)
where N `aws ssm ...` calls cost N AWS CLI processes, about half a CPU-second each: on a control
plane minting or revoking a burst's per-instance tokens, most of the command's time.

Credentials: the environment's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
else the instance role through IMDSv2 (what the SSM agent's commands run with on EC2). Anything
else (profiles, SSO, a credential process) exits 5, and the caller writes with the AWS CLI.
Endpoint: `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL`, else `ssm.<region>.<partition suffix>`.
No secret reaches stdout or stderr: errors carry AWS error codes only.
"""
import datetime
import hashlib
import hmac
import json
import os
import random
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

IMDS = "http://169.254.169.254"
NO_CREDENTIALS = 5
RETRIED = ("ThrottlingException", "ThrottledException", "TooManyUpdates", "InternalServerError",
           "ServiceUnavailable", "RequestTimeout")
PARALLEL_MAX = 16


class AwsError(Exception):
    def __init__(self, code, status=0):
        super().__init__(code)
        self.code, self.status = code, status


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(method, url, headers, body, creds, region, service, now):
    """Signature Version 4: returns headers with X-Amz-Date, the session token and Authorization
    added. `headers` must not carry those three."""
    parts = urllib.parse.urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = dict(headers)
    headers["Host"] = parts.netloc
    headers["X-Amz-Date"] = amz_date
    if creds.get("token"):
        headers["X-Amz-Security-Token"] = creds["token"]
    canonical = sorted((k.lower(), " ".join(str(v).split())) for k, v in headers.items()
                       if k.lower() != "user-agent")
    signed = ";".join(k for k, _ in canonical)
    query = "&".join(sorted("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    request = "\n".join([method, urllib.parse.quote(parts.path or "/", safe="/-_.~"), query,
                         "".join("%s:%s\n" % kv for kv in canonical), signed,
                         hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + creds["secret"]).encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        creds["key"], scope, signed, signature)
    return headers


def _imds(path, token=None, method="GET", timeout=2):
    headers = {"X-aws-ec2-metadata-token": token} if token else {
        "X-aws-ec2-metadata-token-ttl-seconds": "300"}
    req = urllib.request.Request(IMDS + path, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as answer:  # noqa: S310 (fixed IMDS address)
        return answer.read().decode()


def credentials(env=None):
    """The credentials the AWS CLI would find first in the two places a control plane has them:
    the environment, then the instance role (IMDSv2). None when neither has them."""
    env = os.environ if env is None else env
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return {"key": env["AWS_ACCESS_KEY_ID"], "secret": env["AWS_SECRET_ACCESS_KEY"],
                "token": env.get("AWS_SESSION_TOKEN", "")}
    if env.get("AWS_PROFILE") or env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    try:
        token = _imds("/latest/api/token", method="PUT")
        role = _imds("/latest/meta-data/iam/security-credentials/", token).split()[0]
        found = json.loads(_imds("/latest/meta-data/iam/security-credentials/" + role, token))
        return {"key": found["AccessKeyId"], "secret": found["SecretAccessKey"], "token": found.get("Token", "")}
    except (OSError, ValueError, KeyError, IndexError):
        return None


def endpoint(region, env=None):
    env = os.environ if env is None else env
    for name in ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"):
        if env.get(name):
            return env[name].rstrip("/") + "/"
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return "https://ssm.%s.%s/" % (region, suffix)


class Ssm:
    """The two Parameter Store calls a batch of records needs, signed here."""

    def __init__(self, creds, region, url, app_id=""):
        self.creds, self.region, self.url = creds, region, url
        self.agent = "joinkeeper-node-scripts" + (" app/%s" % app_id if app_id else "")

    def call(self, operation, payload, attempts=6):
        body = json.dumps(payload).encode()
        for attempt in range(attempts):
            try:
                return self._once(operation, body)
            except AwsError as err:
                if err.code not in RETRIED and err.status < 500 or attempt + 1 == attempts:
                    raise
            except OSError:
                if attempt + 1 == attempts:
                    raise AwsError("ConnectionError")
            # Full jitter, as the SDKs back off: up to 0.2 s, doubling to 6.4 s.
            time.sleep(random.uniform(0, min(6.4, 0.2 * 2 ** attempt)))
        raise AwsError("RetriesExhausted")

    def _once(self, operation, body):
        headers = sign("POST", self.url, {"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "AmazonSSM." + operation},
                       body, self.creds, self.region, "ssm", datetime.datetime.now(datetime.timezone.utc))
        headers["User-Agent"] = self.agent
        req = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310 (the SSM endpoint)
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                kind = json.loads(err.read() or b"{}").get("__type", "")
            except ValueError:
                kind = ""
            raise AwsError(re.sub(r"^.*#", "", kind) or "HTTP%d" % err.code, err.code)


def own_client():
    """A client signing with credentials of its own; exit 5 (the caller uses the AWS CLI) when
    there are none, or no region."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    creds = credentials()
    if not creds or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        sys.stderr.write("joinkeeper-json: no credentials or region of its own to sign with\n")
        sys.exit(NO_CREDENTIALS)
    return Ssm(creds, region, endpoint(region), os.environ.get("AWS_SDK_UA_APP_ID", ""))


def in_threads(fn, items, parallel):
    """fn(item) for every item, `parallel` at a time."""
    queue, lock = list(items), threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop(0)
            fn(item)

    threads = [threading.Thread(target=worker) for _ in range(max(1, min(parallel, len(items))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
