"""CertificateSigningRequests of the stand-in cluster (a TEST DOUBLE, NOT A KUBERNETES).

A kubelet joining with a bootstrap token creates a CSR whose `spec.username` is
`system:bootstrap:<token id>` and whose PKCS#10 request has the subject
`O=system:nodes, CN=system:node:<node name>` (signer kubernetes.io/kube-apiserver-client-kubelet);
kube-controller-manager approves it, and its CSR cleaner deletes it an hour after approval. The
request built here is well-formed DER with the real subject and an EC P-256 public key, but its
key and signature are random bytes: nothing verifies them, and nothing here is a secret.
"""
import base64
import secrets

import joinkeeper_standin as st

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
APPROVED_LIFETIME = 3600  # csrcleaner: approved (issued) requests go after one hour


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


def add_bootstrap_csr(state, token_id, node_name):
    """Records the approved CSR of a kubelet that joined with `token_id` as `node_name`."""
    state.setdefault("csrs", []).append({
        "name": "csr-" + st.rand(5),
        "username": "system:bootstrap:" + token_id,
        "request": base64.b64encode(node_csr_pem(node_name).encode()).decode(),
        "created": st.now(),
    })


def prune(state):
    """What the CSR cleaner would have deleted by now."""
    cutoff = st.now() - APPROVED_LIFETIME
    state["csrs"] = [c for c in state.get("csrs", []) if c["created"] > cutoff]


def csr_object(csr):
    stamp = st.fmt_ts(csr["created"])
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"creationTimestamp": stamp, "name": csr["name"], "resourceVersion": "1"},
        "spec": {
            "groups": ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                       "system:authenticated"],
            "request": csr["request"],
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
            "username": csr["username"],
        },
        "status": {
            "certificate": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n").decode(),
            "conditions": [{"lastTransitionTime": stamp, "lastUpdateTime": stamp,
                            "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                            "reason": "AutoApproved", "status": "True", "type": "Approved"}],
        },
    }
