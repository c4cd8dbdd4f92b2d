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
  put-records --dir D --ids "i-.. i-.." --cluster C --ttl-seconds N --name-prefix P/C/join/
              --arn-base ARN [--kms-key-id K] [--parallel N]  (D/<id>.join -> record written at
              P/C/join/<id>; exit 5: no credentials of its own, write with the AWS CLI)
  missing-records --ids "i-.. i-.." --name-prefix P/C/join/   (`missing <id>` for each absent
              record; exit 5 as put-records)
  delete-records --ids "i-.. i-.." --name-prefix P/C/join/   (`deleted <id>` for each record
              gone; exit 5 as put-records)
  token-expiry --token-id ID  < kubeadm token list -o json            (prints expires, RFC 3339)
  revocable --cluster C --new-token-id ID --history FILE --tokens FILE  (ids to revoke)
  join-config --api v1beta3|v1beta4 --node-name N [--provider-id P]  < record  (YAML)
  node-lookup --nodes FILE --ids "i-.. i-.." [--dns-map FILE] [--need-dns FILE]  (node-status lines)
  nodes --nodes FILE [--start-after NAME] [--max-chars N]           (joinkeeper-nodes lines)
  node-facts --nodes FILE --ids "i-.. i-.." [--dns-map F] [--ip-map F] [--max-chars N]
                                                  (node-status facts: Nodes that could claim each id)
  drain-left  < kubectl drain output                                 (kind + left lines)
  bootstrap-joins --csrs FILE --tokens FILE [--max-lines N]  (token id -> Node name, from kubelet CSRs)

Runs on Python 3.6+ (the oldest python3 on supported node images).
"""
import os
import sys

# The subcommands live in the package next to this file (joinkeeper_json/, one module per group).
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from joinkeeper_json.cli import main  # noqa: E402
# What joinkeeper-revoke-tokens uses when it loads this file as a module.
from joinkeeper_json.common import TOKEN_ID_RE, Invalid  # noqa: E402,F401
from joinkeeper_json.tokens import history_records, parse_token_stream  # noqa: E402,F401

if __name__ == "__main__":
    main()
