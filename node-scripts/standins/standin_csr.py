"""CertificateSigningRequests of the stand-in cluster (a TEST DOUBLE, NOT A KUBERNETES).

A kubelet joining with a bootstrap token creates a CSR whose `spec.username` is
`system:bootstrap:<token id>` and whose PKCS#10 request has the subject
`O=system:nodes, CN=system:node:<node name>` (signer kubernetes.io/kube-apiserver-client-kubelet).
kube-controller-manager's csrapproving controller approves it only when the requester may create
`certificatesigningrequests/nodeclient` (a SubjectAccessReview): kubeadm grants that to the group
`system:bootstrappers:kubeadm:default-node-token` (ClusterRoleBinding
`kubeadm:node-autoapprove-bootstrap`) and to no other group, so a CSR made with a token of another
extra group stays pending until someone runs `kubectl certificate approve|deny`. The CSR cleaner
deletes approved and denied requests after an hour, pending ones after a day. The
request built here is well-formed DER with the real subject and an EC P-256 public key, but its
key and signature are random bytes: nothing verifies them, and nothing here is a secret.
"""
import base64
import secrets

import joinkeeper_standin as st

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
APPROVED_LIFETIME = 3600  # csrcleaner: approved (issued) and denied requests go after one hour
PENDING_LIFETIME = 24 * 3600  # csrcleaner: pending requests go after a day
# The group kubeadm binds to the nodeclient auto-approval ClusterRole.
AUTO_APPROVED_GROUP = "system:bootstrappers:kubeadm:default-node-token"


def _der(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def _oid(*arcs):
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(chunk)
    return _der(0x06, body)


def _rdn(oid, value):
    return _der(0x31, _der(0x30, oid + _der(0x0C, value.encode())))


def node_csr_pem(node_name):
    """A PEM CERTIFICATE REQUEST as a kubelet's TLS bootstrap sends it (random key/signature)."""
    subject = _der(0x30, _rdn(_oid(2, 5, 4, 10), "system:nodes") + _rdn(_oid(2, 5, 4, 3), "system:node:" + node_name))
    spki = _der(0x30, _der(0x30, _oid(1, 2, 840, 10045, 2, 1) + _oid(1, 2, 840, 10045, 3, 1, 7))
                + _der(0x03, b"\x00\x04" + secrets.token_bytes(64)))
    info = _der(0x30, _der(0x02, b"\x00") + subject + spki + _der(0xA0, b""))
    signature = _der(0x30, _der(0x02, b"\x00" + secrets.token_bytes(32)) + _der(0x02, b"\x00" + secrets.token_bytes(32)))
    der = _der(0x30, info + _der(0x30, _oid(1, 2, 840, 10045, 4, 3, 2)) + _der(0x03, b"\x00" + signature))
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE REQUEST-----\n%s\n-----END CERTIFICATE REQUEST-----\n" % "\n".join(lines)


def add_bootstrap_csr(state, token_id, node_name, groups=(AUTO_APPROVED_GROUP,)):
    """Records the CSR of a kubelet that joins with `token_id` (of extra `groups`) as
    `node_name`: approved at once when the auto-approval covers its groups, else pending. Returns
    the CSR's name."""
    name = "csr-" + st.rand(5)
    state.setdefault("csrs", []).append({
        "name": name,
        "username": "system:bootstrap:" + token_id,
        "groups": list(groups),
        "request": base64.b64encode(node_csr_pem(node_name).encode()).decode(),
        "created": st.now(),
        "status": "AutoApproved" if AUTO_APPROVED_GROUP in groups else None,
    })
    return name


def decide(state, name, approve):
    """`kubectl certificate approve|deny NAME`: None when done (or already so), else the error."""
    for csr in state.get("csrs", []):
        if csr["name"] != name:
            continue
        current = csr.get("status", "AutoApproved")
        if current is None:
            csr["status"] = "KubectlApprove" if approve else "KubectlDeny"
            csr["decided"] = st.now()
            return None
        if (current == "KubectlDeny") == (not approve):
            return None
        return ('certificatesigningrequest.certificates.k8s.io "%s" is already %s'
                % (name, "Denied" if current == "KubectlDeny" else "Approved"))
    return 'certificatesigningrequests.certificates.k8s.io "%s" not found' % name


def status_of(state, name):
    """A CSR's status (None: pending; absent: "gone")."""
    for csr in state.get("csrs", []):
        if csr["name"] == name:
            return csr.get("status", "AutoApproved")
    return "gone"


def prune(state):
    """What the CSR cleaner would have deleted by now."""
    t = st.now()
    state["csrs"] = [c for c in state.get("csrs", [])
                     if c["created"] > t - (PENDING_LIFETIME if c.get("status", "AutoApproved") is None
                                            else APPROVED_LIFETIME)]


def csr_object(csr):
    stamp = st.fmt_ts(csr.get("decided", csr["created"]))
    status = csr.get("status", "AutoApproved")
    conditions = {
        None: [],
        "AutoApproved": [{"message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                          "reason": "AutoApproved", "type": "Approved"}],
        "KubectlApprove": [{"message": "This CSR was approved by kubectl certificate approve.",
                            "reason": "KubectlApprove", "type": "Approved"}],
        "KubectlDeny": [{"message": "This CSR was denied by kubectl certificate deny.",
                         "reason": "KubectlDeny", "type": "Denied"}],
    }[status]
    for c in conditions:
        c.update({"lastTransitionTime": stamp, "lastUpdateTime": stamp, "status": "True"})
    status_block = {"conditions": conditions} if conditions else {}
    if status in ("AutoApproved", "KubectlApprove"):  # the signer issues approved requests at once
        status_block["certificate"] = base64.b64encode(
            b"-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n").decode()
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"creationTimestamp": st.fmt_ts(csr["created"]), "name": csr["name"], "resourceVersion": "1"},
        "spec": {
            "groups": ["system:bootstrappers"] + csr.get("groups", [AUTO_APPROVED_GROUP]) + ["system:authenticated"],
            "request": csr["request"],
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
            "username": csr["username"],
        },
        "status": status_block,
    }
