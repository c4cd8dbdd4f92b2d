#!/usr/bin/env bash
# Stand-in for kURL's installer (`curl https://kurl.sh/<id> | sudo bash`) — a TEST DOUBLE, NOT
# kURL AND NOT A KUBERNETES, served by the boot sandbox's stand-in curl. Like kURL it installs the
# host packages (containerd, kubelet, kubeadm, kubectl: recording wrappers around the stand-ins),
# runs `kubeadm init` (which prints the bootstrap token, and with `ha` the certificate key, as
# kURL's own run shows them), copies tasks.sh to /var/lib/kurl and prints kURL's closing
# instructions with the node join commands, token and (ha) cert-key included: exactly the output
# a boot script must keep out of its logs.
# Flags (kURL's names): ha, load-balancer-address=HOST:PORT, installer-spec-file=PATH, airgap,
# yes, preserve-*-config; anything else fails as kURL fails ("unknown parameter").
set -euo pipefail
# shellcheck source=boot/jk-boot-lib.sh
. "$JOINKEEPER_BOOT_STANDINS/boot/jk-boot-lib.sh"
jk_record kurl-install "$@"
ha=0 lb=""
for arg in "$@"; do
  case "$arg" in
    ha) ha=1 ;;
    load-balancer-address=*) lb=${arg#*=}; ha=1 ;;
    installer-spec-file=* | airgap | yes | preserve-docker-config | preserve-firewalld-config | preserve-iptables-config | preserve-selinux-config) ;;
    *) echo "Error: unknown parameter \"${arg%%=*}\"" >&2; exit 1 ;;
  esac
done
if jk_should_fail kurl-install "$@" || jk_should_fail kurl-install install; then
  echo "Error: host preflight checks failed (stand-in)" >&2
  exit 1
fi
echo "⚙  Running install with the argument(s): $*"
echo "⚙  Installing host packages containerd, kubelet, kubeadm, kubectl (stand-in)"
for tool in containerd kubelet kubeadm kubectl; do jk_install_tool "$tool"; done
mkdir -p /var/lib/kurl /opt/replicated
cp "$JOINKEEPER_BOOT_STANDINS/kurl/tasks.sh" /var/lib/kurl/tasks.sh
imds_token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
private_ip=$(curl -fsS -H "X-aws-ec2-metadata-token: $imds_token" http://169.254.169.254/latest/meta-data/local-ipv4)
endpoint=${lb:-$private_ip:6443}
{
  echo "apiVersion: kubeadm.k8s.io/v1beta3"
  echo "kind: InitConfiguration"
  echo "nodeRegistration:"
  echo "  name: \"$(hostname)\""
  echo "---"
  echo "apiVersion: kubeadm.k8s.io/v1beta3"
  echo "kind: ClusterConfiguration"
  echo "controlPlaneEndpoint: \"$endpoint\""
} >/opt/replicated/kubeadm.conf
echo "⚙  Initialize Kubernetes"
init_args=(init --config /opt/replicated/kubeadm.conf --ignore-preflight-errors=all)
if ((ha)); then init_args+=(--upload-certs); fi
init_out=$(kubeadm "${init_args[@]}")
printf '%s\n' "$init_out"
token=$(sed -n 's/^\[bootstrap-token\] Using token: //p' <<<"$init_out")
cert_key=$(grep -A1 '^\[upload-certs\] Using certificate key:' <<<"$init_out" | tail -n 1 || true)
ca_hash=$(grep -o 'sha256:[0-9a-f]*' <<<"$init_out" | head -n 1)
version=$(kubeadm version -o short | sed 's/^v//')
echo
echo "		Installation"
echo "		  Complete ✔"
echo
echo "To add worker nodes to this installation, run the following script on your other nodes:"
echo "    curl -fsSL https://kurl.sh/version/v2024.08.12-0/joinkeeper-demo/join.sh | sudo bash -s kubernetes-master-address=$endpoint kubeadm-token=$token kubeadm-token-ca-hash=$ca_hash kubernetes-version=$version"
if ((ha)); then
  echo
  echo "To add MASTER nodes to this installation, run the following script on your other nodes:"
  echo "    curl -fsSL https://kurl.sh/version/v2024.08.12-0/joinkeeper-demo/join.sh | sudo bash -s kubernetes-master-address=$endpoint kubeadm-token=$token kubeadm-token-ca-hash=$ca_hash kubernetes-version=$version cert-key=$cert_key control-plane"
fi
