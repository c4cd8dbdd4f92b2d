"""The command line: the fifteen subcommands and their options (usage: ../joinkeeper-json.py)."""
import argparse
import sys

from .common import Invalid, fail
from .csrs import cmd_bootstrap_joins
from .instance_tokens import cmd_instance_tokens
from .nodes import cmd_drain_left, cmd_node_facts, cmd_node_lookup, cmd_nodes
from .record import cmd_build_record, cmd_check_record, cmd_join_config, cmd_put_input
from .record_batch import cmd_delete_records, cmd_missing_records, cmd_put_records
from .tokens import cmd_revocable, cmd_token_expiry


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
    p.add_argument("--tag", action="append", default=[], help="KEY=VALUE; makes the write create-only")
    p = sub.add_parser("put-records")
    p.add_argument("--dir", required=True, help="holds <instance-id>.join, a join command each")
    p.add_argument("--ids", required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--ttl-seconds", type=int, required=True)
    p.add_argument("--name-prefix", required=True, help="<prefix>/<cluster>/join/")
    p.add_argument("--arn-base", required=True, help="arn:<partition>:ec2:<region>:<account>:instance")
    p.add_argument("--kms-key-id", default="")
    p.add_argument("--parallel", type=int, default=8)
    p = sub.add_parser("missing-records")
    p.add_argument("--ids", required=True)
    p.add_argument("--name-prefix", required=True, help="<prefix>/<cluster>/join/")
    p = sub.add_parser("delete-records")
    p.add_argument("--ids", required=True)
    p.add_argument("--name-prefix", required=True, help="<prefix>/<cluster>/join/")
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
    p = sub.add_parser("node-facts")
    p.add_argument("--nodes", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--dns-map", default="")
    p.add_argument("--ip-map", default="")
    p.add_argument("--max-chars", type=int, default=23900)
    p.add_argument("--packed", action="store_true")
    sub.add_parser("drain-left")
    p = sub.add_parser("bootstrap-joins")
    p.add_argument("--csrs", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--max-lines", type=int, default=300)
    p = sub.add_parser("instance-tokens")
    p.add_argument("--cluster", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--csrs", required=True)
    p.add_argument("--wanted", default="-")
    p.add_argument("--revoke", default="-")
    args = parser.parse_args()
    handler = {
        "build-record": cmd_build_record,
        "check-record": cmd_check_record,
        "put-input": cmd_put_input,
        "put-records": cmd_put_records,
        "missing-records": cmd_missing_records,
        "delete-records": cmd_delete_records,
        "token-expiry": cmd_token_expiry,
        "revocable": cmd_revocable,
        "join-config": cmd_join_config,
        "node-lookup": cmd_node_lookup,
        "nodes": cmd_nodes,
        "node-facts": cmd_node_facts,
        "drain-left": cmd_drain_left,
        "bootstrap-joins": cmd_bootstrap_joins,
        "instance-tokens": cmd_instance_tokens,
    }.get(args.command)
    if handler is None:
        parser.print_usage(sys.stderr)
        sys.exit(2)
    try:
        handler(args)
    except Invalid as err:
        fail(str(err))
