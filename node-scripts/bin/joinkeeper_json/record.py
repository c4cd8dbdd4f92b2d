"""The join record (docs/contracts.md): its validation, and the subcommands that build, check,
store and use one (build-record, check-record, put-input, join-config)."""
import json
import re
import sys

from .common import (CLUSTER_RE, HASH_RE, NODE_NAME_RE, PROVIDER_ID_RE, TOKEN_ID_RE, TOKEN_SECRET_RE,
                     Invalid, fail, parse_ts, valid_endpoint)
from .join_command import parse_kubeadm_join, parse_kurl_join

RECORD_KEYS = ("version", "cluster", "source", "endpoint", "token_id", "token_secret",
               "ca_cert_hash", "created_at", "expires_at")


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


def build_record(text, cluster, source, created_at, expires_at):
    """The join record of a join command (kubeadm's or kURL's), validated."""
    if source == "kurl":
        endpoint, token_id, secret, ca_hash = parse_kurl_join(text)
    else:
        endpoint, token_id, secret, ca_hash = parse_kubeadm_join(text)
    record = {
        "version": 1,
        "cluster": cluster,
        "source": source,
        "endpoint": endpoint,
        "token_id": token_id,
        "token_secret": secret,
        "ca_cert_hash": ca_hash,
        "created_at": created_at,
        "expires_at": expires_at,
    }
    validate_record(record, cluster)
    return record


def cmd_build_record(args):
    record = build_record(sys.stdin.read(), args.cluster, args.source, args.created_at, args.expires_at)
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


def put_input(record, name, kms_key_id="", tags=()):
    """PutParameter's input for a record: a SecureString; with tags, a create-only write."""
    put = {"Name": name, "Type": "SecureString", "Overwrite": True, "Value": record_json(record)}
    if tags:
        # Parameter Store takes tags on creation only (not with Overwrite): a create-only write.
        put["Overwrite"] = False
        put["Tags"] = [dict(zip(("Key", "Value"), t.split("=", 1))) for t in tags if "=" in t]
    if kms_key_id:
        put["KeyId"] = kms_key_id
    return put


def cmd_put_input(args):
    record = load_record(sys.stdin.read())
    sys.stdout.write(json.dumps(put_input(record, args.name, args.kms_key_id, args.tag)) + "\n")


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
