"""Endpoint, token and CA hash from the join command kubeadm or kURL prints."""
from .common import ANSI_RE, HASH_RE, TOKEN_RE, Invalid, valid_endpoint


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
