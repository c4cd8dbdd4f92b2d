"""The record batches of join mode per-instance (put-records, missing-records, delete-records):
each command is one process, its calls signed by aws_client, where the script's AWS CLI path costs
a process a record. Lines name instance ids and AWS error codes only, never a secret."""
import os
import re
import sys
import threading
import time

from .aws_client import PARALLEL_MAX, AwsError, in_threads, own_client
from .common import CLUSTER_RE, INSTANCE_RE, Invalid, fail
from .record import build_record, put_input

PREFIX_RE = re.compile(r"(/[A-Za-z0-9_.-]+)+/")


def instance_ids(text):
    ids = text.split()
    if not all(INSTANCE_RE.fullmatch(i) for i in ids):
        fail("--ids holds instance ids only")
    return ids


def put_one(ssm, put):
    """Creates (or overwrites) one parameter from its put-input; a create-only write that finds
    a record left behind deletes it and creates it again, as the script's AWS CLI path does."""
    try:
        ssm.call("PutParameter", put)
    except AwsError as err:
        if err.code != "ParameterAlreadyExists" or put.get("Overwrite", True):
            raise
        try:
            ssm.call("DeleteParameter", {"Name": put["Name"]})
        except AwsError as gone:
            if gone.code != "ParameterNotFound":
                raise
        ssm.call("PutParameter", put)


def cmd_put_records(args):
    """Each `<dir>/<id>.join` (kubeadm's join command for that instance's token) becomes the
    record at `<name-prefix><id>`, created with the instance's tag; a line each."""
    ids = instance_ids(args.ids)
    if not CLUSTER_RE.fullmatch(args.cluster) or not PREFIX_RE.fullmatch(args.name_prefix):
        fail("--cluster or --name-prefix is not valid")
    if not re.fullmatch(r"arn:aws[a-z-]*:ec2:[a-z0-9-]+:\d{12}:instance", args.arn_base):
        fail("--arn-base is not arn:<partition>:ec2:<region>:<account>:instance")
    ssm = own_client()
    now = int(time.time())
    ts = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    items, results, lock = [], {}, threading.Lock()
    for ident in ids:
        try:
            with open(os.path.join(args.dir, ident + ".join"), encoding="utf-8") as f:
                record = build_record(f.read(), args.cluster, "kubeadm", ts(now), ts(now + args.ttl_seconds))
        except (OSError, Invalid):
            results[ident] = "unreadable-input"
            continue
        tags = ("joinkeeper:instance=%s/%s" % (args.arn_base, ident), "joinkeeper:cluster=" + args.cluster)
        items.append((ident, put_input(record, args.name_prefix + ident, args.kms_key_id, tags)))

    def write(item):
        try:
            put_one(ssm, item[1])
            outcome = None
        except AwsError as err:
            outcome = err.code
        with lock:
            results[item[0]] = outcome

    in_threads(write, items, min(args.parallel, PARALLEL_MAX))
    for ident in ids:
        code = results.get(ident, "not-sent")
        sys.stdout.write("written %s\n" % ident if code is None else "failed %s %s\n" % (ident, code))


def by_tens(ids, prefix, operation, payload, answered):
    """`operation` on the ids' records, 10 names a call, 4 calls at a time; the ids whose names
    `answered(answer)` lists. A failed call names none of its ids."""
    ssm, found, lock = own_client(), set(), threading.Lock()

    def ask(batch):
        try:
            answer = ssm.call(operation, dict(payload, Names=[prefix + i for i in batch]))
        except AwsError:
            return
        names = answered(answer)
        with lock:
            found.update(i for i in batch if prefix + i in names)

    in_threads(ask, [ids[i:i + 10] for i in range(0, len(ids), 10)], 4)
    return found


def cmd_missing_records(args):
    """`missing <id>` for each absent record (GetParameters, without decryption)."""
    ids = instance_ids(args.ids)
    if not PREFIX_RE.fullmatch(args.name_prefix):
        fail("--name-prefix is not valid")
    missing = by_tens(ids, args.name_prefix, "GetParameters", {"WithDecryption": False},
                      lambda a: set(a.get("InvalidParameters") or []))
    for ident in ids:
        if ident in missing:
            sys.stdout.write("missing %s\n" % ident)


def cmd_delete_records(args):
    """`deleted <id>` for each record now gone, deleted now or absent before (DeleteParameters)."""
    ids = instance_ids(args.ids)
    if not PREFIX_RE.fullmatch(args.name_prefix):
        fail("--name-prefix is not valid")
    gone = by_tens(ids, args.name_prefix, "DeleteParameters", {},
                   lambda a: set(a.get("DeletedParameters") or []) | set(a.get("InvalidParameters") or []))
    for ident in ids:
        if ident in gone:
            sys.stdout.write("deleted %s\n" % ident)
