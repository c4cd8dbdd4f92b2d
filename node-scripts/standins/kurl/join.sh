#!/usr/bin/env bash
# Stand-in for kURL's join.sh — a TEST DOUBLE, NOT kURL AND NOT A KUBERNETES, served by the boot
# sandbox's stand-in curl. Like kURL it takes its settings as flags (kubernetes-master-address=,
# kubeadm-token=, kubeadm-token-ca-hash=, kubernetes-version=, cert-key=, control-plane) or from
# an Installer patch file (installer-spec-file=PATH, fields spec.kubernetes.masterAddress,
# kubeadmToken, kubeadmTokenCAHash, certKey, controlPlane, version: the way to keep the token and
# the certificate key off the command line), installs the host packages, writes
# /opt/replicated/kubeadm.conf and runs `kubeadm join --config` with it.
set -euo pipefail
# shellcheck source=boot/jk-boot-lib.sh
. "$JOINKEEPER_BOOT_STANDINS/boot/jk-boot-lib.sh"
jk_record kurl-join "$@"
master="" token="" ca_hash="" cert_key="" control_plane=0 spec=""
for arg in "$@"; do
  value=${arg#*=}
  case "$arg" in
    kubernetes-master-address=*) master=$value ;;
    kubeadm-token=*) token=$value ;;
    kubeadm-token-ca-hash=*) ca_hash=$value ;;
    cert-key=*) cert_key=$value ;;
    control-plane) control_plane=1 ;;
    installer-spec-file=*) spec=$value ;;
    kubernetes-version=* | docker-registry-ip=* | additional-no-proxy-addresses=* | kurl-install-directory=* | airgap | yes) ;;
    *) echo "Error: unknown parameter \"${arg%%=*}\"" >&2; exit 1 ;;
  esac
done
if [[ -n "$spec" ]]; then
  [[ -r "$spec" ]] || { echo "Error: failed to load file $spec" >&2; exit 1; }
  grep -q '^kind: Installer' "$spec" || { echo "Error: installer yaml contained unexpected gvk" >&2; exit 1; }
  field() { sed -n "s/^    $1:[[:space:]]*\"\\{0,1\\}\\([^\"]*\\)\"\\{0,1\\}[[:space:]]*$/\\1/p" "$spec" | tail -n 1; }
  master=${master:-$(field masterAddress)}
  token=${token:-$(field kubeadmToken)}
  ca_hash=${ca_hash:-$(field kubeadmTokenCAHash)}
  cert_key=${cert_key:-$(field certKey)}
  if [[ "$(field controlPlane)" == true ]]; then control_plane=1; fi
fi
[[ -n "$master" && -n "$token" && -n "$ca_hash" ]] || { echo "Error: join needs kubernetes-master-address, kubeadm-token and kubeadm-token-ca-hash" >&2; exit 1; }
if jk_should_fail kurl-join join; then echo "Error: host preflight checks failed (stand-in)" >&2; exit 1; fi
echo "⚙  Installing host packages containerd, kubelet, kubeadm, kubectl (stand-in)"
for tool in containerd kubelet kubeadm kubectl; do jk_install_tool "$tool"; done
mkdir -p /opt/replicated /var/lib/kurl
cp "$JOINKEEPER_BOOT_STANDINS/kurl/tasks.sh" /var/lib/kurl/tasks.sh # kURL's install directory, on every node
(
  umask 077
  echo "apiVersion: kubeadm.k8s.io/v1beta3"
  echo "kind: JoinConfiguration"
  echo "discovery:"
  echo "  bootstrapToken:"
  echo "    apiServerEndpoint: \"$master\""
  echo "    token: \"$token\""
  echo "    caCertHashes:"
  echo "    - \"$ca_hash\""
  echo "nodeRegistration:"
  echo "  name: \"$(hostname)\""
  if ((control_plane)); then
    echo "controlPlane:"
    echo "  certificateKey: \"$cert_key\""
  fi
) >/opt/replicated/kubeadm.conf
if ((control_plane)); then echo "⚙  Join Kubernetes master node"; else echo "⚙  Join Kubernetes node"; fi
echo "+ kubeadm join --config /opt/replicated/kubeadm.conf --ignore-preflight-errors=all"
kubeadm join --config /opt/replicated/kubeadm.conf --ignore-preflight-errors=all
if ((control_plane)); then echo "⚙  Master node joined successfully"; else echo "⚙  Node joined successfully"; fi
