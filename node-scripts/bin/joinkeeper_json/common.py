"""What every subcommand shares: the value patterns, the error class, timestamps, endpoints."""
import calendar
import re
import sys
import time

# The pieces that recur, written once: a bootstrap token's id and secret, an EC2 instance id,
# and a Kubernetes object name (an RFC 1123 subdomain; Node names are ones).
TOKEN_ID = r"[a-z0-9]{6}"
TOKEN_SECRET = r"[a-z0-9]{16}"
INSTANCE_ID = r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?"
K8S_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"

CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
TOKEN_ID_RE = re.compile(TOKEN_ID)
TOKEN_SECRET_RE = re.compile(TOKEN_SECRET)
TOKEN_RE = re.compile(r"(%s)\.(%s)" % (TOKEN_ID, TOKEN_SECRET))
HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
INSTANCE_RE = re.compile(INSTANCE_ID)
K8S_NAME_RE = re.compile(K8S_NAME)
NODE_NAME_RE = K8S_NAME_RE
DNS_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?")
PROVIDER_ID_RE = re.compile(r"aws:///[a-z0-9-]{1,32}/" + INSTANCE_ID)
PROVIDER_TEXT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:/._-]{0,252}")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Invalid(Exception):
    """Input rejected; the message never contains a secret."""


def fail(message, code=3):
    sys.stderr.write("joinkeeper-json: %s\n" % message)
    sys.exit(code)


def parse_ts(value):
    if not isinstance(value, str) or not TS_RE.fullmatch(value):
        raise Invalid("timestamp is not RFC 3339 UTC with second precision and Z")
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise Invalid("timestamp is not a real date")


def parse_any_ts(value):
    """Accepts RFC 3339 with fractions or offsets (as metav1.Time may print); returns epoch."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})", value or "")
    if not m:
        raise Invalid("unparseable timestamp")
    epoch = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        epoch -= sign * (int(m.group(3)[1:3]) * 3600 + int(m.group(3)[4:6]) * 60)
    return epoch


def fmt_ts(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def valid_endpoint(endpoint):
    """host:port with a DNS name, IPv4 or bracketed IPv6 host, port 1-65535 (as the core crate)."""
    if not isinstance(endpoint, str) or ":" not in endpoint:
        return False
    host, port = endpoint.rsplit(":", 1)
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        return re.fullmatch(r"[0-9A-Fa-f:.]+", host[1:-1]) is not None
    if not host or len(host) > 253:
        return False
    return all(re.fullmatch(r"[A-Za-z0-9-]{1,63}", label) for label in host.split("."))
