"""Per-instance join tokens (join mode `per-instance`): what the control plane does this pass.

Every token of the mode carries the extra group PER_INSTANCE_GROUP (bound to what a join needs,
never to the kubelet client certificate auto-approval) and the description
`joinkeeper per-instance <cluster> <instance-id>`, which names its instance. `plan` decides,
from the token list, the CSR list and what the functions asked, which tokens to mint and revoke
and which certificate requests to approve or deny. It sees no secret (token ids only) and
decides nothing about Nodes: which instance waits, and under which Node name, is the caller's."""
import json
import re
import sys

from .common import CLUSTER_RE, INSTANCE_RE, NODE_NAME_RE, Invalid
from .csrs import BOOTSTRAP_USER_RE, KUBELET_SIGNER, NODE_CN_PREFIX, pem_body, subject_common_names
from .tokens import parse_token_stream

PER_INSTANCE_GROUP = "system:bootstrappers:joinkeeper:per-instance"
# Tokens of other instances listed as strays, at most (the caller revokes those not waiting).
MAX_STRAYS = 50


def description(cluster, instance):
    return "joinkeeper per-instance %s %s" % (cluster, instance)


def owner(token, cluster):
    """The instance a per-instance token of `cluster` was minted for, or None."""
    if PER_INSTANCE_GROUP not in token.get("groups", []):
        return None
    words = token.get("description", "").split(" ")
    if len(words) == 4 and words[:3] == ["joinkeeper", "per-instance", cluster] and INSTANCE_RE.fullmatch(words[3]):
        return words[3]
    return None


def pending_requests(csr_list):
    """(csr name, token id, [common names]) of the pending kubelet client CSRs made with a
    bootstrap token (no Approved or Denied condition yet)."""
    items = csr_list.get("items") if isinstance(csr_list, dict) else None
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        spec, status = item.get("spec") or {}, item.get("status") or {}
        name = (item.get("metadata") or {}).get("name")
        if not isinstance(spec, dict) or not isinstance(name, str) or not NODE_NAME_RE.fullmatch(name):
            continue
        if spec.get("signerName") != KUBELET_SIGNER:
            continue
        conditions = status.get("conditions") if isinstance(status, dict) else None
        if any(isinstance(c, dict) and c.get("type") in ("Approved", "Denied") for c in conditions or []):
            continue
        user = BOOTSTRAP_USER_RE.fullmatch(spec.get("username") or "")
        if not user:
            continue
        try:
            names = subject_common_names(pem_body(spec.get("request") or ""))
        except Invalid:
            names = []
        found.append((name, user.group(1), names))
    return found


def plan(cluster, tokens, csr_list, wanted, revoke):
    """The steps, in order: `revoke <instance> <token id|->`, `deny|approve <instance> <csr>
    <node|->`, `mint <instance>`, `held <instance> <token id>`, `stray <instance> <token id>`.
    wanted: {instance: Node name} of the instances waiting to join; revoke: instances whose wait
    ended. A request made with an instance's token is approved only when its one CN is
    `system:node:<that instance's Node name>` and the instance still waits; any other request
    made with a per-instance token of this cluster (another name, several CNs, an instance no
    longer waiting) is denied."""
    steps, ours = [], {}
    for t in tokens:
        instance = owner(t, cluster)
        if instance:
            ours.setdefault(instance, []).append(t["id"])
    for instance in sorted(set(revoke)):
        for token_id in ours.get(instance, ["-"]):
            steps.append(("revoke", instance, token_id))
    by_token = {tid: i for i, ids in ours.items() for tid in ids}
    for csr, token_id, names in pending_requests(csr_list):
        instance = by_token.get(token_id)
        if instance is None:
            continue  # not a per-instance token of this cluster: not ours to judge
        if instance not in wanted and instance not in revoke:
            continue  # another command's batch judges it
        cn = names[0][len(NODE_CN_PREFIX):] if len(names) == 1 and names[0].startswith(NODE_CN_PREFIX) else ""
        node = cn if NODE_NAME_RE.fullmatch(cn or "-") else "-"
        verdict = "approve" if instance in wanted and instance not in revoke and cn == wanted[instance] else "deny"
        steps.append((verdict, instance, csr, node))
    for instance in sorted(wanted):
        if instance in revoke:
            continue
        if instance in ours:
            steps.extend(("held", instance, tid) for tid in ours[instance])
        else:
            steps.append(("mint", instance))
    strays = sorted((i, tid) for i, ids in ours.items() if i not in wanted and i not in revoke for tid in ids)
    steps.extend(("stray", i, tid) for i, tid in strays[:MAX_STRAYS])
    return steps


def read_pairs(text):
    """`<instance>=<node name>` words (or `-`) as a dict."""
    wanted = {}
    for word in text.split():
        if word == "-":
            continue
        instance, _, node = word.partition("=")
        if not INSTANCE_RE.fullmatch(instance) or not NODE_NAME_RE.fullmatch(node):
            raise Invalid("--wanted must be <instance-id>=<node name> words")
        wanted[instance] = node
    return wanted


def cmd_instance_tokens(args):
    if not CLUSTER_RE.fullmatch(args.cluster):
        raise Invalid("--cluster is not a cluster name")
    revoke = [w for w in args.revoke.split() if w != "-"]
    if not all(INSTANCE_RE.fullmatch(w) for w in revoke):
        raise Invalid("--revoke must be instance ids")
    with open(args.tokens) as fh:
        tokens = parse_token_stream(fh.read())
    with open(args.csrs) as fh:
        try:
            csrs = json.load(fh)
        except ValueError:
            raise Invalid("the CSR list is not JSON")
    for step in plan(args.cluster, tokens, csrs, read_pairs(args.wanted), revoke):
        sys.stdout.write(" ".join(step) + "\n")
