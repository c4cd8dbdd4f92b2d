"""Stand-in kubeadm (a test double): `kubeadm join` and `kubeadm reset`."""
import os
import re
import socket
import sys
import time

import joinkeeper_standin as st
import standin_csr
from kubeadm_certs import check_certificate_key, config_certificate_key
from kubeadm_common import (admin_conf, die, kubelet_conf_path, kubelet_provider_id, phase_error, take_flags,
                            write_node_file, yaml_value)
from kubeadm_tokens import DEFAULT_GROUP, TOKEN_RE

# What a bootstrap token's groups must be bound to for `kubeadm join` to read the kubeadm-config
# ConfigMap and for the kubelet to create its CSR; kubeadm init binds both to DEFAULT_GROUP only.
JOIN_ROLES = ("system:node-bootstrapper", "kubeadm:nodes-kubeadm-config")


def missing_bindings(state, groups):
    """The roles none of `groups` is bound to (kubeadm's own bindings, and those applied with
    `kubectl apply`, see the stand-in kubectl)."""
    if DEFAULT_GROUP in groups:
        return []
    bound = state.get("group_bindings", {})
    return [r for r in JOIN_ROLES if not any(g in bound.get(r, []) for g in groups)]


def wait_for_certificate(csr):
    """The kubelet's TLS bootstrap: kubeadm join waits until the CSR is approved (its certificate
    issued), fails when it is denied, and gives up after JOINKEEPER_EMULATOR_TLS_BOOTSTRAP_SECONDS
    (default 300, kubeadm's `timeouts.tlsBootstrap`)."""
    give_up = time.time() + st.env_int("JOINKEEPER_EMULATOR_TLS_BOOTSTRAP_SECONDS", 300)
    while True:
        with st.locked_state(write=False) as state:
            status = standin_csr.status_of(state, csr)
        if status in ("AutoApproved", "KubectlApprove"):
            return
        if status in ("KubectlDeny", "gone") or time.time() > give_up:
            phase_error("error writing TLS bootstrapped kubeconfig: the certificate signing request %s was "
                        "%s" % (csr, "denied" if status == "KubectlDeny" else "not approved in time"))
        time.sleep(0.5)


def parse_join_config(path):
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as err:
        die("unable to read config from \"%s\" : %s" % (path, err))
    if not re.search(r"^kind:\s*JoinConfiguration\s*$", text, re.M):
        die("no JoinConfiguration kind was found in the YAML file")
    if not re.search(r"^apiVersion:\s*kubeadm\.k8s\.io/v1beta[34]\s*$", text, re.M):
        die("the JoinConfiguration apiVersion is not supported")
    hashes = re.findall(r"^\s*-\s*\"?(sha256:[0-9a-fA-F]+)\"?\s*$", text, re.M)
    for flow in re.findall(r"caCertHashes:\s*\[([^\]\n]*)\]", text):  # YAML flow style: [a, b]
        hashes += re.findall(r"sha256:[0-9a-fA-F]+", flow)
    provider = yaml_value(text, "provider-id")
    if provider is None:
        m = re.search(r"-\s*name:\s*\"?provider-id\"?\s*\n\s*value:\s*\"?([^\"\n]*)\"?", text)
        provider = m.group(1) if m else None
    node_section = text.split("nodeRegistration:", 1)[1] if "nodeRegistration:" in text else ""
    name = None
    m = re.search(r"^  name:\s*\"?([^\"\n]*)\"?\s*$", node_section, re.M)
    if m:
        name = m.group(1)
    return {"endpoint": yaml_value(text, "apiServerEndpoint"), "token": yaml_value(text, "token"),
            "hashes": hashes, "name": name, "provider": provider}


def cmd_join(args):
    flags, positional = take_flags(args, ("--config", "--token", "--discovery-token-ca-cert-hash",
                                          "--node-name", "--discovery-token", "--tls-bootstrap-token",
                                          "--cri-socket", "--ignore-preflight-errors", "--certificate-key"),
                                   ("--discovery-token-unsafe-skip-ca-verification", "--control-plane"))
    control_plane = flags.get("--control-plane") == "true"
    if "--config" in flags:
        cfg = parse_join_config(flags["--config"])
        with open(flags["--config"]) as fh:
            control_plane = control_plane or re.search(r"^controlPlane:", fh.read(), re.M) is not None
    else:
        cfg = {"endpoint": positional[0] if positional else None, "token": flags.get("--token"),
               "hashes": [flags["--discovery-token-ca-cert-hash"]] if "--discovery-token-ca-cert-hash" in flags else [],
               "name": flags.get("--node-name"), "provider": None}
    print("[preflight] Running pre-flight checks")
    sys.stdout.flush()
    conf = kubelet_conf_path()
    if conf and os.path.exists(conf):
        die("error execution phase preflight: [preflight] Some fatal errors occurred:\n"
            "\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists\n"
            "[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`\nTo see the stack trace of this error execute with --v=5 or higher")
    if not cfg["endpoint"]:
        die("discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\": a valid API server endpoint is required")
    if not cfg["token"] or not TOKEN_RE.match(cfg["token"]):
        die("discovery.bootstrapToken.token: Invalid value: \"\": the bootstrap token is invalid")
    behaviour = os.environ.get("JOINKEEPER_EMULATOR_JOIN", "ok")
    with st.locked_state(write=False) as state:
        endpoint, ca_hash = state["endpoint"], state["ca_cert_hash"]
        tokens = dict(state["tokens"])
    url = ('Get "https://%s/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s"'
           % cfg["endpoint"])
    if behaviour == "fail" or cfg["endpoint"] != endpoint:
        phase_error("couldn't validate the identity of the API Server: failed to request the "
                    "cluster-info ConfigMap: %s: dial tcp %s: connect: connection refused"
                    % (url, cfg["endpoint"]))
    token_id, secret = TOKEN_RE.match(cfg["token"]).groups()
    if token_id not in tokens:
        phase_error("couldn't validate the identity of the API Server: could not find a JWS "
                    "signature in the cluster-info ConfigMap for token ID \"%s\"" % token_id)
    if tokens[token_id]["secret"] != secret:
        phase_error("couldn't validate the identity of the API Server: failed to verify JWS "
                    "signature of received cluster info object, can't trust this API Server")
    if ca_hash.lower() not in [h.lower() for h in cfg["hashes"]]:
        phase_error("couldn't validate the identity of the API Server: cluster CA found in "
                    "cluster-info ConfigMap is invalid: none of the public keys \"%s\" are pinned"
                    % ca_hash)
    if control_plane:
        check_certificate_key(flags.get("--certificate-key") or
                              (config_certificate_key(flags["--config"]) if "--config" in flags else None))
    name = (cfg["name"] or os.environ.get("JOINKEEPER_PRIVATE_DNS") or socket.gethostname()).lower()
    # A tampered node (tests: group tag emulator:node-name) asks for another Node name.
    name = os.environ.get("JOINKEEPER_EMULATOR_NODE_NAME") or name
    provider = cfg["provider"] or kubelet_provider_id()
    iid, az = os.environ.get("JOINKEEPER_INSTANCE_ID", ""), os.environ.get("JOINKEEPER_AVAILABILITY_ZONE", "")
    if not provider and iid and az:
        provider = "aws:///%s/%s" % (az, iid)  # what the AWS cloud controller manager would set
    print("[preflight] Reading configuration from the cluster...")
    print("[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
          "kubeadm-config -o yaml'")
    print('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    print('[kubelet-start] Writing kubelet environment file with flags to file '
          '"/var/lib/kubelet/kubeadm-flags.env"')
    print("[kubelet-start] Starting the kubelet")
    print("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. "
          "This can take up to 4m0s")
    print("[kubelet-check] The kubelet is healthy after 501.2ms")
    print("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    groups = tokens[token_id].get("groups", [DEFAULT_GROUP])
    forbidden = missing_bindings(state, groups)
    if forbidden:
        phase_error('unable to fetch the kubeadm-config ConfigMap: configmaps "kubeadm-config" is forbidden: '
                    'User "system:bootstrap:%s" cannot get resource "configmaps" in API group "" in the '
                    'namespace "kube-system" (no binding of %s to its groups)' % (token_id, forbidden))
    with st.locked_state() as state:
        if token_id not in state["tokens"]:  # revoked or expired while we were joining
            die("error execution phase kubelet-start: error uploading crisocket: timed out waiting "
                "for the condition\nTo see the stack trace of this error execute with --v=5 or higher")
        csr = standin_csr.add_bootstrap_csr(state, token_id, name, groups)  # the kubelet's TLS bootstrap
    wait_for_certificate(csr)
    with st.locked_state() as state:
        st.add_node(state, name, provider,
                    ready="False" if behaviour == "never-ready" else "True",
                    drain_seconds=st.env_int("JOINKEEPER_EMULATOR_DRAIN_SECONDS"),
                    stuck_pods=st.env_int("JOINKEEPER_EMULATOR_STUCK_PODS"),
                    role="control-plane" if control_plane else "worker")
    if conf:
        write_node_file("etc/kubernetes/kubelet.conf",
                        "# stand-in kubelet.conf (test double): node %s joined %s\n" % (name, endpoint))
    if control_plane:
        with st.locked_state(write=False) as state:
            write_node_file("etc/kubernetes/admin.conf", admin_conf(state))
    print("""
This node has joined the cluster:
* Certificate signing request was sent to apiserver and a response was received.
* The Kubelet was informed of the new secure connection details.

Run 'kubectl get nodes' on the control-plane to see this node join the cluster.
""")


def cmd_reset(args):
    flags, _ = take_flags(args, ("--cri-socket",), ("-f", "--force"))
    if "-f" not in flags and "--force" not in flags:
        die("[reset] Are you sure you want to proceed? [y/N]: error: won't proceed; the user "
            "didn't answer (Y|y) in order to continue")
    print("[preflight] Running pre-flight checks")
    print("W1127 00:00:00.000000    1234 removeetcdmember.go:106] [reset] No kubeadm config, "
          "using etcd pod spec to get data directory")
    print("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
    print("[reset] Stopping the kubelet service")
    print('[reset] Unmounting mounted directories in "/var/lib/kubelet"')
    print("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet "
          "/etc/kubernetes/pki]")
    print("[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf "
          "/etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf "
          "/etc/kubernetes/scheduler.conf]")
    conf = kubelet_conf_path()
    if conf and os.path.exists(conf):
        os.remove(conf)
