"""Stand-in kubeadm (a test double): its error exits, flag parsing, and the files it leaves on
the node. See the `kubeadm` stand-in next to this file."""
import os
import re
import sys


def die(message, code=1):
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(code)


def phase_error(message):
    die("error execution phase preflight: %s\nTo see the stack trace of this error execute with "
        "--v=5 or higher" % message)


def take_flags(args, with_value, booleans=()):
    """Splits args into (flags dict, positionals). Accepts --f v and --f=v."""
    flags, positional, i = {}, [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, value = arg, None
            if "=" in arg:
                name, value = arg.split("=", 1)
            if name in booleans:
                flags[name] = "true" if value is None else value
            elif name in with_value:
                if value is None:
                    i += 1
                    if i >= len(args):
                        die("Error: flag needs an argument: %s" % name)
                    value = args[i]
                flags[name] = value
            else:
                # Unknown flags (--kubeconfig, --v, ...) are accepted and ignored; a value follows
                # when it does not look like a flag.
                if value is None and i + 1 < len(args) and not args[i + 1].startswith("-") \
                        and name not in ("-f", "--force", "--skip-log-headers"):
                    i += 1
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def yaml_value(text, key):
    m = re.search(r"^\s*-?\s*%s:\s*\"?([^\"\n]*)\"?\s*$" % re.escape(key), text, re.M)
    return m.group(1).strip() if m else None


def node_root():
    """Where this node's / is: JOINKEEPER_NODE_DIR in emulation, JOINKEEPER_STANDIN_ROOT (`/`)
    inside the boot sandbox (a private root); empty: write no node files at all."""
    return os.environ.get("JOINKEEPER_NODE_DIR", "") or os.environ.get("JOINKEEPER_STANDIN_ROOT", "")


def kubelet_conf_path():
    root = node_root()
    return os.path.join(root, "etc/kubernetes/kubelet.conf") if root else ""


def write_node_file(relative, text):
    """A file kubeadm leaves on the node (kubeconfigs), 0600 as kubeadm writes them."""
    root = node_root()
    if not root:
        return
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def kubelet_provider_id():
    """--provider-id from the kubelet's extra arguments (/etc/default/kubelet), as kubelet takes it."""
    root = node_root()
    if not root:
        return ""
    try:
        with open(os.path.join(root, "etc/default/kubelet")) as fh:
            m = re.search(r"--provider-id=(\S+)", fh.read())
    except OSError:
        return ""
    return m.group(1) if m else ""


def admin_conf(state):
    return ("# stand-in admin.conf (test double): cluster %s\napiVersion: v1\nkind: Config\n"
            "clusters:\n- cluster:\n    server: https://%s\n  name: kubernetes\n"
            % (state["ca_cert_hash"][:19], state["endpoint"]))
