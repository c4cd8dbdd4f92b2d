"""`kubectl get nodes -o json` and `kubectl drain` output: node-lookup, nodes, drain-left."""
import base64
import json
import re
import sys
import zlib

from .common import ANSI_RE, DNS_NAME_RE, INSTANCE_RE, K8S_NAME_RE, PROVIDER_TEXT_RE, TS_RE, fail


def ready_status(node):
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return {"True": "Ready", "False": "NotReady"}.get(cond.get("status"), "Unknown")
    return "Unknown"


# Label namespaces a kubelet cannot set on its own Node (NodeRestriction): only an administrator
# (or kubeadm) put them there. Only these labels are reported.
PROTECTED_LABEL_PREFIXES = ("node-role.kubernetes.io/", "node-restriction.kubernetes.io/")
LABEL_TEXT_RE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_./]{0,316}")
LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
IPV4_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
IPV6_RE = re.compile(r"[0-9a-fA-F:]{2,39}")


def internal_ip(node):
    for addr in (node.get("status") or {}).get("addresses") or []:
        if isinstance(addr, dict) and addr.get("type") == "InternalIP":
            value = addr.get("address")
            if isinstance(value, str) and (IPV4_RE.fullmatch(value) or IPV6_RE.fullmatch(value)):
                return value
    return ""


def protected_labels(meta):
    """`key=value,...` of the protected labels (at most 8, each printable), or ""."""
    labels = meta.get("labels") or {}
    out = []
    for key in sorted(labels if isinstance(labels, dict) else {}):
        value = labels[key]
        if (key.startswith(PROTECTED_LABEL_PREFIXES) and LABEL_TEXT_RE.fullmatch(key)
                and isinstance(value, str) and LABEL_VALUE_RE.fullmatch(value)):
            out.append("%s=%s" % (key, value))
    return ",".join(out[:8])


def node_entries(path):
    """(name, providerID or "", Ready|NotReady|Unknown, created, cordoned, InternalIP or "",
    protected labels or "") of each valid Node, sorted by name."""
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
                      spec.get("unschedulable") is True, internal_ip(node), protected_labels(meta)))
    nodes.sort()
    return nodes


def node_line(entry):
    """The facts of one Node as joinkeeper-nodes and node-status (facts) print them."""
    name, provider, status, created, cordoned, ip, labels = entry
    if provider and not PROVIDER_TEXT_RE.fullmatch(provider):
        provider = "invalid"
    return "%s %s %s %s %s %s %s\n" % (name, provider or "-", created or "-", status,
                                       "yes" if cordoned else "no", ip or "-", labels or "-")


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
    claimed = {}
    for name, provider, status, *_ in nodes:
        owner = provider_instance(provider)
        if owner:
            claimed[owner] = claimed.get(owner, 0) + 1
            by_instance.setdefault(owner, (name, status))
    # Two Nodes naming one instance: neither is believed (the drain refuses, never picks one).
    for owner, count in claimed.items():
        if count > 1:
            by_instance[owner] = ("-", "Contested")
    # The private-DNS fallback may only pick a Node that has no providerID at all.
    unowned = {name: status for name, provider, status, *_ in nodes if not provider}
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
    for i, entry in enumerate(nodes):
        name = entry[0]
        line = node_line(entry)
        rest = len(nodes) - i - 1
        reserve = len("more %s\n" % name) if rest else 0
        if len(line) + reserve > budget:
            last = lines[-1].split(" ", 1)[0] if lines else args.start_after
            lines.append("more %s\n" % last)
            break
        lines.append(line)
        budget -= len(line)
    sys.stdout.write("".join(lines))


def read_pairs(path, value_re):
    pairs = {}
    if path:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and INSTANCE_RE.fullmatch(parts[0]) and value_re.fullmatch(parts[1]):
                    pairs[parts[0]] = parts[1].lower()
    return pairs


# More Nodes than this that could claim one instance: `id <id> many` (read as contested).
MAX_CANDIDATES = 4


def cmd_node_facts(args):
    """For each id, in order: the facts of every Node that could claim it (its providerID names
    the id, or its name is the id's private DNS name or that name's first label, or its
    InternalIP is the id's private IP), each Node printed once, then `id <id>`. Which Node is
    the instance's is the caller's decision. Whole blocks only, at most --max-chars."""
    nodes = node_entries(args.nodes)
    dns = read_pairs(args.dns_map, DNS_NAME_RE)
    ips = read_pairs(args.ip_map, IPV4_RE)
    by_key = {}
    for entry in nodes:
        name, provider, ip = entry[0], entry[1], entry[5]
        for key in (name, ip and "ip:" + ip, provider_instance(provider) and "id:" + provider_instance(provider)):
            if key:
                by_key.setdefault(key, []).append(entry)
    printed = set()
    budget = args.max_chars
    blocks = []
    for instance_id in args.ids.split():
        if not INSTANCE_RE.fullmatch(instance_id):
            fail("instance id is not valid")
        keys = ["id:" + instance_id]
        if instance_id in dns:
            keys += [dns[instance_id], dns[instance_id].split(".", 1)[0]]
        if instance_id in ips:
            keys.append("ip:" + ips[instance_id])
        found = []
        for key in keys:
            for entry in by_key.get(key, []):
                if entry not in found:
                    found.append(entry)
        block = ["node " + node_line(e) for e in found[:MAX_CANDIDATES] if e[0] not in printed]
        block.append("id %s%s\n" % (instance_id, " many" if len(found) > MAX_CANDIDATES else ""))
        text = "".join(block)
        # Plain facts stop at the budget; packed ones are cut to it once packed.
        if not args.packed:
            if len(text) > budget:
                break
            budget -= len(text)
        blocks.append(text)
        printed.update(e[0] for e in found[:MAX_CANDIDATES])
    sys.stdout.write(packed_facts(blocks, args.max_chars) if args.packed else "".join(blocks))


def pack(text):
    """`zfacts <base64 of the zlib-compressed text>`: the same facts in a fifth of the room."""
    return "zfacts %s\n" % base64.b64encode(zlib.compress(text.encode(), 9)).decode("ascii")


def packed_facts(blocks, budget):
    """The longest run of whole blocks, from the first, whose packed line fits in the budget
    (ids left out are not answered, as with plain facts)."""
    line = pack("".join(blocks))
    if len(line) <= budget:
        return line
    fits, too_many = 0, len(blocks)
    while too_many - fits > 1:
        mid = (fits + too_many) // 2
        if len(pack("".join(blocks[:mid]))) <= budget:
            fits = mid
        else:
            too_many = mid
    return pack("".join(blocks[:fits])) if fits else ""


# Why kubectl drain left a pod, from its own messages (kubectl/pkg/drain): refused evictions name
# the pod ('error when evicting pods/"P" -n "NS"'), a PodDisruptionBudget's refusal says so on the
# retry lines ("Cannot evict pod as it would violate the pod's disruption budget"), pods the drain
# will not delete are listed after "cannot delete <why>:".
DRAIN_LEFT_PATTERNS = [
    (re.compile(r'error when evicting pods/"([^"]+)" -n "([^"]+)"'), "eviction"),
    (re.compile(r'error when waiting for pod "([^"]+)" in namespace "([^"]+)"'), "terminating"),
    (re.compile(r'error when evicting pod "([^"]+)" from terminating namespace "([^"]+)"'), "eviction"),
]
CANNOT_DELETE_RE = re.compile(r"cannot delete ([^:]*): ((?:[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*(?:, )?)+)")
CANNOT_DELETE_WHY = [("no controller", "unmanaged"), ("local storage", "local-storage"),
                     ("DaemonSet", "daemonset")]


def drain_left(text):
    """[(namespace, name, why)] in the order kubectl named them, each pod once."""
    found = {}
    for line in ANSI_RE.sub("", text).splitlines():
        pdb = "disruption budget" in line
        for pattern, why in DRAIN_LEFT_PATTERNS:
            for name, namespace in pattern.findall(line):
                key = (namespace, name)
                if pdb:
                    found[key] = "pdb"
                else:
                    found.setdefault(key, why)
        for m in CANNOT_DELETE_RE.finditer(line):
            why = next((w for k, w in CANNOT_DELETE_WHY if k in m.group(1)), "eviction")
            for item in m.group(2).split(","):
                parts = item.strip().split("/")
                if len(parts) == 2:
                    found.setdefault((parts[0], parts[1]), why)
    return [(ns, name, why) for (ns, name), why in found.items()]


def cmd_drain_left(args):
    text = sys.stdin.read()
    kind = "timeout" if "global timeout reached" in text else "failed"
    sys.stdout.write("kind %s\n" % kind)
    count = 0
    for namespace, name, why in drain_left(text):
        if not K8S_NAME_RE.fullmatch(namespace) or not K8S_NAME_RE.fullmatch(name):
            continue
        if count < 50:
            sys.stdout.write("left %s/%s %s\n" % (namespace, name, why))
        count += 1
