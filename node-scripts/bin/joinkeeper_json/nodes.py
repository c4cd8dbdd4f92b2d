"""`kubectl get nodes -o json` and `kubectl drain` output: node-lookup, nodes, drain-left."""
import json
import re
import sys

from .common import ANSI_RE, DNS_NAME_RE, INSTANCE_RE, K8S_NAME_RE, PROVIDER_TEXT_RE, TS_RE, fail


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
