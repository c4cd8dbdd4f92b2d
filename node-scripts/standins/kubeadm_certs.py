"""Stand-in kubeadm (a test double): the certificate key of HA control planes (upload-certs,
`kubeadm certs certificate-key`, the join's check, the test-only expiry)."""
import re
import secrets

import joinkeeper_standin as st
from kubeadm_common import die, yaml_value

CERT_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
CERT_KEY_TTL = 7200  # kubeadm deletes the uploaded certificates after 2 hours


def config_certificate_key(path):
    """certificateKey from a kubeadm config file (InitConfiguration or JoinConfiguration)."""
    try:
        with open(path) as fh:
            return yaml_value(fh.read(), "certificateKey")
    except OSError as err:
        die("unable to read config from \"%s\" : %s" % (path, err))


def upload_certs(flags):
    """Uploads the certificates with the given key (or a new one); prints it unless told not to."""
    key = flags.get("--certificate-key") or (config_certificate_key(flags["--config"]) if "--config" in flags else None)
    key = key or secrets.token_hex(32)
    if not CERT_KEY_RE.match(key):
        die("error execution phase upload-certs: error uploading certs: error decoding certificate key: "
            "encoding/hex: invalid byte")
    with st.locked_state() as state:
        state["certificate_key"] = {"key": key, "expires": st.now() + CERT_KEY_TTL}
        st.remember_secret(state, key)
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    if flags.get("--skip-certificate-key-print") != "true":
        print("[upload-certs] Using certificate key:")
        print(key)


def check_certificate_key(key):
    """What `kubeadm join --control-plane` does with the key: download and decrypt the certs."""
    with st.locked_state(write=False) as state:
        uploaded = state.get("certificate_key")
    prefix = "error execution phase control-plane-prepare/download-certs: error downloading certs: "
    if not uploaded or uploaded["expires"] <= st.now():
        die(prefix + "error downloading the secret: Secret \"kubeadm-certs\" was not found in the "
            "\"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase "
            "upload-certs --upload-certs` on a control plane to generate a new one\nTo see the stack trace "
            "of this error execute with --v=5 or higher")
    if not key or not CERT_KEY_RE.match(key) or key != uploaded["key"]:
        die(prefix + "error decoding secret data with provided key: cipher: message authentication failed"
            "\nTo see the stack trace of this error execute with --v=5 or higher")


def cmd_certs(args):
    if args[:1] == ["certificate-key"]:
        key = secrets.token_hex(32)
        with st.locked_state() as state:
            st.remember_secret(state, key)
        print(key)
        return
    die('Error: unknown command "%s" for "kubeadm certs"' % " ".join(args[:1]))


def cmd_standin(args):
    if args == ["expire-certificate-key"]:
        with st.locked_state() as state:
            if state.get("certificate_key"):
                state["certificate_key"]["expires"] = st.now()
        return
    die("x-standin: unknown verb")
