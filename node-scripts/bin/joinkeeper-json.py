#!/usr/bin/env python3
"""JSON and text helpers for the joinkeeper node scripts (called by joinkeeper-lib.sh).

Everything that carries a token secret (join command text, join records, `kubeadm token list`
output, parameter history) reaches this helper on stdin or in a 0600 file, never as an argument,
and nothing here prints a secret except the two subcommands whose stdout the caller redirects
into a 0600 file (build-record, put-input, join-config). Error messages never quote a secret.

Subcommands (exit 0 on success, 3 on invalid input, 4 on a stale record):
  build-record --cluster C --source kubeadm|kurl --created-at TS --expires-at TS  < join text
  check-record --cluster C [--now EPOCH --min-remaining N]  < record   (prints a safe summary)
  put-input --name NAME [--kms-key-id ID]  < record                  (aws ssm put-parameter input)
  token-expiry --token-id ID  < kubeadm token list -o json            (prints expires, RFC 3339)
  revocable --cluster C --new-token-id ID --history FILE --tokens FILE  (ids to revoke)
  join-config --api v1beta3|v1beta4 --node-name N [--provider-id P]  < record  (YAML)
  node-lookup --nodes FILE --ids "i-.. i-.." [--dns-map FILE] [--need-dns FILE]  (node-status lines)
  nodes --nodes FILE [--start-after NAME] [--max-chars N]           (joinkeeper-nodes lines)
  drain-left  < kubectl drain output                                 (kind + left lines)

Runs on Python 3.6+ (the oldest python3 on supported node images).
"""
import argparse
import calendar
import json
import re
import sys
import time

RECORD_KEYS = ("version", "cluster", "source", "endpoint", "token_id", "token_secret",
               "ca_cert_hash", "created_at", "expires_at")
CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
TOKEN_ID_RE = re.compile(r"[a-z0-9]{6}")
TOKEN_SECRET_RE = re.compile(r"[a-z0-9]{16}")
TOKEN_RE = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
INSTANCE_RE = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
NODE_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
DNS_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?")
PROVIDER_ID_RE = re.compile(r"aws:///[a-z0-9-]{1,32}/i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
K8S_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
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


def validate_record(record, cluster=None):
    if not isinstance(record, dict):
        raise Invalid("record is not a JSON object")
    keys = set(record)
    if keys != set(RECORD_KEYS):
        missing = sorted(set(RECORD_KEYS) - keys)
        extra = sorted(k for k in keys - set(RECORD_KEYS) if re.fullmatch(r"[a-z_]{1,32}", k))
        raise Invalid("record fields wrong (missing %s, unexpected %s)" % (missing, extra))
    if type(record["version"]) is not int or record["version"] != 1:
        raise Invalid("record version is not 1")
    if not isinstance(record["cluster"], str) or not CLUSTER_RE.fullmatch(record["cluster"]):
        raise Invalid("record cluster name is not valid")
    if cluster is not None and record["cluster"] != cluster:
        raise Invalid("record belongs to cluster %r, not %r" % (record["cluster"], cluster))
    if record["source"] not in ("kubeadm", "kurl"):
        raise Invalid("record source is not kubeadm or kurl")
    if not valid_endpoint(record["endpoint"]):
        raise Invalid("record endpoint is not host:port")
    if not isinstance(record["token_id"], str) or not TOKEN_ID_RE.fullmatch(record["token_id"]):
        raise Invalid("record token_id is not [a-z0-9]{6}")
    if not isinstance(record["token_secret"], str) or not TOKEN_SECRET_RE.fullmatch(record["token_secret"]):
        raise Invalid("record token_secret is not [a-z0-9]{16}")
    if not isinstance(record["ca_cert_hash"], str) or not HASH_RE.fullmatch(record["ca_cert_hash"]):
        raise Invalid("record ca_cert_hash is not sha256:<64 lowercase hex>")
    created = parse_ts(record["created_at"])
    expires = parse_ts(record["expires_at"])
    if expires <= created:
        raise Invalid("record expires_at is not after created_at")
    return created, expires


def load_record(text, cluster=None):
    try:
        record = json.loads(text)
    except ValueError as err:
        # The position only: json's message can quote part of the input.
        raise Invalid("record is not valid JSON (near character %d)" % getattr(err, "pos", -1))
    validate_record(record, cluster)
    return record


def record_json(record):
    return json.dumps({k: record[k] for k in RECORD_KEYS}, separators=(",", ":"))


# --- join command parsing -----------------------------------------------------------------

def parse_kubeadm_join(text):
    """Endpoint, token id, secret and CA hash from a `kubeadm join ...` command in text."""
    joined = text.replace("\\\r\n", " ").replace("\\\n", " ")
    line = None
    for candidate in joined.splitlines():
        at = candidate.find("kubeadm join")
        if at >= 0:
            line = candidate[at:]
            break
    if line is None:
        raise Invalid("no `kubeadm join` command found in the output")
    words = line.split()[2:]
    endpoint = token = ca_hash = None
    i = 0
    while i < len(words):
        word = words[i]
        flag, value = word, None
        if word.startswith("--") and "=" in word:
            flag, value = word.split("=", 1)
        if flag in ("--token", "--discovery-token-ca-cert-hash"):
            if value is None:
                i += 1
                value = words[i] if i < len(words) else None
            if flag == "--token":
                token = value
            else:
                ca_hash = value
        elif flag.startswith("-"):
            if value is None and i + 1 < len(words) and not words[i + 1].startswith("-"):
                i += 1
        elif endpoint is None:
            endpoint = word
        i += 1
    return check_join_parts(endpoint, token, ca_hash)


def parse_kurl_join(text):
    """kURL's `tasks.sh join_token` prints (among other lines, with ANSI colours):
        <prefix>join.sh | sudo bash -s kubernetes-master-address=H:P kubeadm-token=ID.SECRET \
            kubeadm-token-ca-hash=sha256:HEX kubernetes-version=V [more flags]
    for workers, and the same with `cert-key=... control-plane` for masters (HA). The first
    worker line wins; a plain `kubeadm join` line is accepted as a fallback.
    """
    clean = ANSI_RE.sub("", text).replace("\\\r\n", " ").replace("\\\n", " ")
    for line in clean.splitlines():
        if "kubeadm-token=" not in line:
            continue
        words = line.split()
        if "control-plane" in words or any(w.startswith("cert-key=") for w in words):
            continue
        values = {}
        for word in words:
            if "=" in word:
                key, value = word.split("=", 1)
                values.setdefault(key, value)
        return check_join_parts(values.get("kubernetes-master-address"), values.get("kubeadm-token"),
                                values.get("kubeadm-token-ca-hash"))
    return parse_kubeadm_join(clean)


def check_join_parts(endpoint, token, ca_hash):
    if endpoint is None:
        raise Invalid("join command has no API server endpoint")
    if not valid_endpoint(endpoint):
        raise Invalid("join command endpoint is not host:port")
    if token is None:
        raise Invalid("join command has no token")
    m = TOKEN_RE.fullmatch(token)
    if not m:
        raise Invalid("join command token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")
    if ca_hash is None:
        raise Invalid("join command has no CA cert hash")
    ca_hash = ca_hash.lower() if ca_hash.startswith("sha256:") else ca_hash
    if not HASH_RE.fullmatch(ca_hash):
        raise Invalid("join command CA cert hash is not sha256:<64 hex>")
    return endpoint, m.group(1), m.group(2), ca_hash


# --- kubeadm token list ---------------------------------------------------------------------

def parse_token_stream(text):
    """`kubeadm token list -o json` prints one indented JSON object per token, back to back
    (not an array). Returns a list of dicts (an array is accepted too)."""
    decoder = json.JSONDecoder()
    items, pos, text = [], 0, text.strip()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            raise Invalid("token list is not a JSON stream (near character %d)" % pos)
        if isinstance(obj, list):
            items.extend(obj)
        elif isinstance(obj, dict) and isinstance(obj.get("items"), list):
            items.extend(obj["items"])
        else:
            items.append(obj)
    tokens = []
    for obj in items:
        if not isinstance(obj, dict):
            continue
        token = obj.get("token")
        if not isinstance(token, str):
            continue
        token_id = token.split(".", 1)[0]
        if not TOKEN_ID_RE.fullmatch(token_id):
            continue
        expires = None
        if isinstance(obj.get("expires"), str):
            try:
                expires = parse_any_ts(obj["expires"])
            except Invalid:
                expires = None
        tokens.append({"id": token_id, "description": obj.get("description") or "", "expires": expires})
    return tokens


# --- parameter history ----------------------------------------------------------------------

def history_records(path, cluster=None):
    """Valid records from `aws ssm get-parameter-history --with-decryption --output json`,
    oldest version first, as (version, record, created_epoch)."""
    with open(path) as fh:
        try:
            data = json.load(fh)
        except ValueError:
            raise Invalid("parameter history is not JSON")
    out = []
    for entry in data.get("Parameters", []) if isinstance(data, dict) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("Version"), int):
            continue
        try:
            record = load_record(entry.get("Value") or "", cluster)
        except Invalid:
            continue
        out.append((entry["Version"], record, parse_ts(record["created_at"])))
    out.sort(key=lambda item: item[0])
    return out


# --- subcommands ------------------------------------------------------------------------------

def cmd_build_record(args):
    text = sys.stdin.read()
    if args.source == "kurl":
        endpoint, token_id, secret, ca_hash = parse_kurl_join(text)
    else:
        endpoint, token_id, secret, ca_hash = parse_kubeadm_join(text)
    record = {
        "version": 1,
        "cluster": args.cluster,
        "source": args.source,
        "endpoint": endpoint,
        "token_id": token_id,
        "token_secret": secret,
        "ca_cert_hash": ca_hash,
        "created_at": args.created_at,
        "expires_at": args.expires_at,
    }
    validate_record(record, args.cluster)
    sys.stdout.write(record_json(record) + "\n")


def cmd_check_record(args):
    record = load_record(sys.stdin.read(), args.cluster)
    summary = "token_id=%s source=%s endpoint=%s created_at=%s expires_at=%s" % (
        record["token_id"], record["source"], record["endpoint"], record["created_at"],
        record["expires_at"])
    sys.stdout.write(summary + "\n")
    if args.now is not None:
        remaining = parse_ts(record["expires_at"]) - args.now
        if remaining < args.min_remaining:
            sys.stderr.write("joinkeeper-json: record expires in %ds, needs at least %ds\n"
                             % (remaining, args.min_remaining))
            sys.exit(4)


def cmd_put_input(args):
    record = load_record(sys.stdin.read())
    put = {"Name": args.name, "Type": "SecureString", "Overwrite": True, "Value": record_json(record)}
    if args.kms_key_id:
        put["KeyId"] = args.kms_key_id
    sys.stdout.write(json.dumps(put) + "\n")


def cmd_token_expiry(args):
    for token in parse_token_stream(sys.stdin.read()):
        if token["id"] == args.token_id and token["expires"] is not None:
            sys.stdout.write(fmt_ts(token["expires"]) + "\n")
            return
    fail("token %s not found in the token list (or it never expires)" % args.token_id, 5)


def cmd_revocable(args):
    """Token ids to revoke: joinkeeper's tokens for this cluster that are older than the record
    before the current one. See the header of joinkeeper-regenerate for the rule."""
    history = history_records(args.history, args.cluster)
    with open(args.tokens) as fh:
        tokens = parse_token_stream(fh.read())
    protected = {args.new_token_id}
    for _, record, _ in history[-2:]:
        protected.add(record["token_id"])
    if len(history) < 2:
        return  # no previous record: nothing is past its grace period yet
    prev_version, prev_record, cutoff = history[-2]
    in_history = {}
    for version, record, created in history:
        in_history.setdefault(record["token_id"], (version, created))
    marker = "joinkeeper:%s" % args.cluster
    for token in tokens:
        token_id = token["id"]
        if token_id in protected:
            continue
        reason = None
        if token_id in in_history:
            version, created = in_history[token_id]
            if version < prev_version or created < cutoff:
                reason = "from record version %d" % version
        else:
            words = token["description"].split()
            if words and words[0] == marker:
                created = None
                for word in words[1:]:
                    if word.startswith("created_at="):
                        try:
                            created = parse_ts(word[len("created_at="):])
                        except Invalid:
                            created = None
                if created is not None and created < cutoff:
                    reason = "created %s" % fmt_ts(created)
        if reason:
            sys.stdout.write("%s %s\n" % (token_id, reason.replace(" ", "_")))


def cmd_join_config(args):
    record = load_record(sys.stdin.read())
    if not NODE_NAME_RE.fullmatch(args.node_name):
        fail("node name is not a valid Kubernetes node name")
    if args.provider_id and not PROVIDER_ID_RE.fullmatch(args.provider_id):
        fail("provider id is not aws:///<zone>/<instance-id>")
    lines = [
        "apiVersion: kubeadm.k8s.io/%s" % args.api,
        "kind: JoinConfiguration",
        "discovery:",
        "  bootstrapToken:",
        '    apiServerEndpoint: "%s"' % record["endpoint"],
        '    token: "%s.%s"' % (record["token_id"], record["token_secret"]),
        "    caCertHashes:",
        '    - "%s"' % record["ca_cert_hash"],
        "nodeRegistration:",
        '  name: "%s"' % args.node_name,
    ]
    if args.provider_id:
        if args.api == "v1beta3":
            lines += ["  kubeletExtraArgs:", '    provider-id: "%s"' % args.provider_id]
        else:
            lines += ["  kubeletExtraArgs:", "  - name: provider-id", '    value: "%s"' % args.provider_id]
    sys.stdout.write("\n".join(lines) + "\n")


def ready_status(node):
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return {"True": "Ready", "False": "NotReady"}.get(cond.get("status"), "Unknown")
    return "Unknown"


def node_entries(path):
    """(name, providerID or "", Ready|NotReady|Unknown, created, cordoned) of each valid Node."""
    with open(path) as fh:
        try:
            data = json.load(fh)
        except ValueError:
            fail("kubectl get nodes did not return JSON")
    nodes = []
    for node in data.get("items") or [] if isinstance(data, dict) else []:
        if not isinstance(node, dict):
            continue
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not K8S_NAME_RE.fullmatch(name):
            continue
        provider = spec.get("providerID") or ""
        created = meta.get("creationTimestamp") or ""
        nodes.append((name, provider if isinstance(provider, str) else "", ready_status(node),
                      created if isinstance(created, str) and TS_RE.fullmatch(created) else "",
                      spec.get("unschedulable") is True))
    nodes.sort()
    return nodes


def provider_instance(provider):
    """The instance id a providerID names (aws:///<zone>/<id>, or aws:///<id>), else None."""
    last = provider.rstrip("/").rsplit("/", 1)[-1] if provider.startswith("aws://") else ""
    return last if INSTANCE_RE.fullmatch(last) else None


def cmd_node_lookup(args):
    nodes = node_entries(args.nodes)
    dns = {}
    if args.dns_map:
        with open(args.dns_map) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and INSTANCE_RE.fullmatch(parts[0]) and DNS_NAME_RE.fullmatch(parts[1]):
                    dns[parts[0]] = parts[1].lower()
    by_instance = {}
    for name, provider, status, _, _ in nodes:
        owner = provider_instance(provider)
        if owner and owner not in by_instance:
            by_instance[owner] = (name, status)
    # The private-DNS fallback may only pick a Node that has no providerID at all.
    unowned = {name: status for name, provider, status, _, _ in nodes if not provider}
    need_dns = []
    for instance_id in args.ids.split():
        if not INSTANCE_RE.fullmatch(instance_id):
            fail("instance id is not valid")
        found = by_instance.get(instance_id)
        if found is None and dns.get(instance_id) in unowned:
            found = (dns[instance_id], unowned[dns[instance_id]])
        if found is None:
            sys.stdout.write("%s - Absent\n" % instance_id)
            need_dns.append(instance_id)
        else:
            sys.stdout.write("%s %s %s\n" % (instance_id, found[0], found[1]))
    if args.need_dns:
        with open(args.need_dns, "w") as fh:
            if unowned and not dns:
                fh.write("".join(i + "\n" for i in need_dns))


def cmd_nodes(args):
    """One line per Node, sorted by name, after --start-after; at most --max-chars in all. When
    Nodes remain, the last line is `more <name of the last Node printed>`."""
    nodes = [n for n in node_entries(args.nodes) if n[0] > args.start_after]
    budget = args.max_chars
    lines = []
    for i, (name, provider, status, created, cordoned) in enumerate(nodes):
        if provider and not PROVIDER_TEXT_RE.fullmatch(provider):
            provider = "invalid"
        line = "%s %s %s %s %s\n" % (name, provider or "-", created or "-", status,
                                      "yes" if cordoned else "no")
        rest = len(nodes) - i - 1
        reserve = len("more %s\n" % name) if rest else 0
        if len(line) + reserve > budget:
            last = lines[-1].split(" ", 1)[0] if lines else args.start_after
            lines.append("more %s\n" % last)
            break
        lines.append(line)
        budget -= len(line)
    sys.stdout.write("".join(lines))


def cmd_drain_left(args):
    text = ANSI_RE.sub("", sys.stdin.read())
    patterns = [
        re.compile(r'error when evicting pods/"([^"]+)" -n "([^"]+)"'),
        re.compile(r'error when waiting for pod "([^"]+)" in namespace "([^"]+)"'),
        re.compile(r'error when evicting pod "([^"]+)" from terminating namespace "([^"]+)"'),
    ]
    left = []
    for line in text.splitlines():
        for pattern in patterns:
            for name, namespace in pattern.findall(line):
                left.append((namespace, name))
        m = re.search(r"cannot delete [^:]*: (.*)$", line)
        if m:
            for item in m.group(1).split(","):
                parts = item.strip().split("/")
                if len(parts) == 2:
                    left.append((parts[0], parts[1]))
    kind = "timeout" if "global timeout reached" in text else "failed"
    sys.stdout.write("kind %s\n" % kind)
    seen = set()
    count = 0
    for namespace, name in left:
        if (namespace, name) in seen or not K8S_NAME_RE.fullmatch(namespace) or not K8S_NAME_RE.fullmatch(name):
            continue
        seen.add((namespace, name))
        if count < 50:
            sys.stdout.write("left %s/%s\n" % (namespace, name))
        count += 1


def main():
    parser = argparse.ArgumentParser(prog="joinkeeper-json")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("build-record")
    p.add_argument("--cluster", required=True)
    p.add_argument("--source", required=True, choices=("kubeadm", "kurl"))
    p.add_argument("--created-at", required=True)
    p.add_argument("--expires-at", required=True)
    p = sub.add_parser("check-record")
    p.add_argument("--cluster")
    p.add_argument("--now", type=int)
    p.add_argument("--min-remaining", type=int, default=0)
    p = sub.add_parser("put-input")
    p.add_argument("--name", required=True)
    p.add_argument("--kms-key-id", default="")
    p = sub.add_parser("token-expiry")
    p.add_argument("--token-id", required=True)
    p = sub.add_parser("revocable")
    p.add_argument("--cluster", required=True)
    p.add_argument("--new-token-id", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--tokens", required=True)
    p = sub.add_parser("join-config")
    p.add_argument("--api", required=True, choices=("v1beta3", "v1beta4"))
    p.add_argument("--node-name", required=True)
    p.add_argument("--provider-id", default="")
    p = sub.add_parser("node-lookup")
    p.add_argument("--nodes", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--dns-map", default="")
    p.add_argument("--need-dns", default="")
    p = sub.add_parser("nodes")
    p.add_argument("--nodes", required=True)
    p.add_argument("--start-after", default="")
    p.add_argument("--max-chars", type=int, default=24000)
    sub.add_parser("drain-left")
    args = parser.parse_args()
    handler = {
        "build-record": cmd_build_record,
        "check-record": cmd_check_record,
        "put-input": cmd_put_input,
        "token-expiry": cmd_token_expiry,
        "revocable": cmd_revocable,
        "join-config": cmd_join_config,
        "node-lookup": cmd_node_lookup,
        "nodes": cmd_nodes,
        "drain-left": cmd_drain_left,
    }.get(args.command)
    if handler is None:
        parser.print_usage(sys.stderr)
        sys.exit(2)
    try:
        handler(args)
    except Invalid as err:
        fail(str(err))


if __name__ == "__main__":
    main()
