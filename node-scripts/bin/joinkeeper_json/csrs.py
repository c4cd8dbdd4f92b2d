"""Which bootstrap token each Node joined with, from `kubectl get csr -o json`: bootstrap-joins.

A kubelet's TLS bootstrap authenticates with the bootstrap token, so its CertificateSigningRequest
has `spec.username` `system:bootstrap:<token id>`, and the request's subject CN is
`system:node:<node name>`. This module only reports those facts; which Nodes to act on is decided
by joinkeeper, against the cluster's instances. The PKCS#10 request is read with a small DER
walker (no crypto library is needed to read a subject)."""
import base64
import binascii
import json
import re
import sys

from .common import NODE_NAME_RE, TOKEN_ID, Invalid
from .tokens import parse_token_stream

KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
BOOTSTRAP_USER_RE = re.compile(r"system:bootstrap:(%s)" % TOKEN_ID)
CN_OID = b"\x55\x04\x03"  # 2.5.4.3, commonName
NODE_CN_PREFIX = "system:node:"


def _tlv(data, pos, end):
    """(tag, start of value, end of value) of the DER element at pos, within [pos, end)."""
    if pos + 2 > end:
        raise Invalid("truncated DER element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise Invalid("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise Invalid("DER element overruns its container")
    return tag, pos, pos + length


def _children(data, start, end):
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos, end)
        yield tag, vstart, vend
        pos = vend


def subject_common_names(der):
    """The CN values of a DER CertificationRequest's subject (RFC 2986: the request info is the
    first element, its subject the second after the version)."""
    tag, start, end = _tlv(der, 0, len(der))
    if tag != 0x30:
        raise Invalid("not a certificate request")
    tag, start, end = _tlv(der, start, end)  # certificationRequestInfo
    if tag != 0x30:
        raise Invalid("no request info")
    parts = list(_children(der, start, end))
    if len(parts) < 2 or parts[0][0] != 0x02 or parts[1][0] != 0x30:
        raise Invalid("no subject")
    names = []
    for rdn_tag, rstart, rend in _children(der, parts[1][1], parts[1][2]):
        if rdn_tag != 0x31:
            raise Invalid("bad relative distinguished name")
        for _, astart, aend in _children(der, rstart, rend):
            attr = list(_children(der, astart, aend))
            if len(attr) == 2 and attr[0][0] == 0x06 and der[attr[0][1]:attr[0][2]] == CN_OID:
                names.append(der[attr[1][1]:attr[1][2]].decode("utf-8", "replace"))
    return names


def pem_body(request_b64):
    """The DER of `spec.request` (base64 of a PEM "CERTIFICATE REQUEST")."""
    try:
        pem = base64.b64decode(request_b64, validate=True).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Invalid("spec.request is not base64 PEM")
    m = re.search(r"-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----(.*?)-----END (?:NEW )?CERTIFICATE REQUEST-----",
                  pem, re.S)
    if not m:
        raise Invalid("spec.request holds no CERTIFICATE REQUEST block")
    try:
        return base64.b64decode("".join(m.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("the CERTIFICATE REQUEST block is not base64")


def bootstrap_joins(csr_list):
    """Sorted, distinct (token id, node name) of the kubelet client CSRs made with a bootstrap
    token. CSRs that are not (another user, another signer, an unreadable request, a CN that is
    not one Node name) are left out."""
    items = csr_list.get("items") if isinstance(csr_list, dict) else None
    found = set()
    for item in items if isinstance(items, list) else []:
        spec = item.get("spec") if isinstance(item, dict) else None
        if not isinstance(spec, dict) or spec.get("signerName", KUBELET_SIGNER) != KUBELET_SIGNER:
            continue
        user = BOOTSTRAP_USER_RE.fullmatch(spec.get("username") or "")
        if not user or not isinstance(spec.get("request"), str):
            continue
        try:
            names = subject_common_names(pem_body(spec["request"]))
        except Invalid:
            continue
        if len(names) != 1 or not names[0].startswith(NODE_CN_PREFIX):
            continue
        node = names[0][len(NODE_CN_PREFIX):]
        if NODE_NAME_RE.fullmatch(node):
            found.add((user.group(1), node))
    return sorted(found)


def cmd_bootstrap_joins(args):
    """`joined token_id=<id> node=<name> token=<live|gone>` lines (live: the token is still on
    this control plane), at most --max-lines, then `joins-seen <n>`: how many there were in all
    (more than the lines when some were left out; the line's absence means nothing was read)."""
    with open(args.csrs) as fh:
        try:
            csrs = json.load(fh)
        except ValueError:
            raise Invalid("the CSR list is not JSON")
    with open(args.tokens) as fh:
        live = {t["id"] for t in parse_token_stream(fh.read())}
    joins = bootstrap_joins(csrs)
    for token_id, node in joins[:args.max_lines]:
        state = "live" if token_id in live else "gone"
        sys.stdout.write("joined token_id=%s node=%s token=%s\n" % (token_id, node, state))
    sys.stdout.write("joins-seen %d\n" % len(joins))
