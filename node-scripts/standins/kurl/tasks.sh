#!/usr/bin/env bash
# Stand-in for kURL's tasks.sh — a TEST DOUBLE, NOT kURL AND NOT A KUBERNETES.
#
# Implements only the `join_token` task, the way kURL's own tasks.sh does it (read through
# replicatedhq/kURL scripts/tasks.sh): generate a token with `kubeadm token generate`, create it
# with `kubeadm token create <token> --print-join-command` (kubeadm's default 24 h TTL, no
# description), take the API address ($3) and the sha256 CA hash from that line, and print the
# node join instructions, coloured, with the worker line
#     <prefix>join.sh | sudo bash -s kubernetes-master-address=H:P kubeadm-token=ID.SECRET \
#       kubeadm-token-ca-hash=sha256:HEX kubernetes-version=V <more flags>
# and, with `ha`, a second line for masters carrying cert-key=... control-plane.
# Run as kURL documents it:  cat ./tasks.sh | sudo bash -s join_token [ha] [airgap]
# The stand-in `kubeadm` must come first on PATH.
set -euo pipefail

GREEN='\033[0;32m'
BLUE='\033[0;94m'
NC='\033[0m'
PREFIX="curl -fsSL https://kurl.sh/version/v2024.08.12-0/joinkeeper-demo/"

join_token() {
  shift
  local ha=0 airgap=0
  while [ "${1:-}" != "" ]; do
    case "$1" in
      ha) ha=1 ;;
      airgap) airgap=1 ;;
      ipv6) ;;
      *) echo >&2 "Error: unknown parameter \"$1\""; exit 1 ;;
    esac
    shift
  done
  local bootstrap_token tmp kubeadm_ca_hash api_service_address kubernetes_version cert_key
  bootstrap_token=$(kubeadm token generate)
  tmp=$(mktemp)
  kubeadm token create "$bootstrap_token" --print-join-command 2>/dev/null >"$tmp"
  kubeadm_ca_hash=$(grep -o 'sha256:[^ ]*' "$tmp")
  api_service_address=$(awk '{ print $3 }' "$tmp")
  rm -f "$tmp"
  kubernetes_version=$(kubeadm version -o short | sed 's/^v*//')
  cert_key=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  local common=" docker-registry-ip=10.96.0.5 additional-no-proxy-addresses=10.96.0.0/22,10.32.0.0/20 kurl-install-directory=/var/lib/kurl"
  local runner="${PREFIX}join.sh | sudo bash -s"
  if [ "$airgap" = 1 ]; then runner="cat ./join.sh | sudo bash -s airgap"; fi

  if [ "$ha" = 1 ]; then
    printf "Master node join commands expire after two hours, and worker node join commands expire after 24 hours.\n"
  else
    printf "Node join commands expire after 24 hours.\n"
  fi
  printf "\n"
  printf "To generate new node join commands, run %b%stasks.sh | sudo bash -s join_token%b on this node.\n" "$GREEN" "$PREFIX" "$NC"
  printf "\n"
  printf "To add worker nodes to this installation, run the following script on your other nodes:"
  printf "\n"
  printf "%b    %s kubernetes-master-address=%s kubeadm-token=%s kubeadm-token-ca-hash=%s kubernetes-version=%s%s\n" \
    "$GREEN" "$runner" "$api_service_address" "$bootstrap_token" "$kubeadm_ca_hash" "$kubernetes_version" "$common"
  printf "%b" "$NC"
  printf "\n"
  printf "\n"
  if [ "$ha" = 1 ]; then
    printf "\n"
    printf "To add %bMASTER%b nodes to this installation, run the following script on your other nodes:" "$GREEN" "$NC"
    printf "\n"
    printf "%b    %s kubernetes-master-address=%s kubeadm-token=%s kubeadm-token-ca-hash=%s kubernetes-version=%s cert-key=%s control-plane%s\n" \
      "$GREEN" "$runner" "$api_service_address" "$bootstrap_token" "$kubeadm_ca_hash" "$kubernetes_version" "$cert_key" "$common"
    printf "%b" "$NC"
    printf "\n"
    printf "\n"
  fi
  : "$BLUE"
}

case "${1:-}" in
  join_token | join-token) join_token "$@" ;;
  *) echo >&2 "stand-in tasks.sh: only join_token is implemented"; exit 1 ;;
esac
