// Bash functions the user data of every node defines (user-data.ts puts them in): retries,
// redacted installer logs, instance metadata, packages, the node scripts from the S3 asset, and
// (control planes) the CloudFormation wait-condition signal. Plain bash text: `${var}` is bash.

export const FUNCTIONS = String.raw`
retry() {
  local n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 6 ]; then echo "giving up after $n tries: $*" >&2; return 1; fi
    sleep $((n * 10))
  done
}
run_logged() {
  # run_logged NAME CMD... : an installer's whole output (it shows join commands, tokens and
  # certificate keys) goes through the node scripts' redaction filter into the 0600 file
  # /var/log/joinkeeper/NAME.log; only its last lines reach this log and the console.
  local name=$1 rc=0
  shift
  "$@" 2>&1 </dev/null | /opt/joinkeeper/bin/joinkeeper-redact >"/var/log/joinkeeper/$name.log" || rc=$?
  echo "--- $name: exit $rc; whole output (redacted) in /var/log/joinkeeper/$name.log; last lines:"
  tail -n 15 "/var/log/joinkeeper/$name.log"
  return "$rc"
}
kubelet_provider_id() {
  # providerID lets joinkeeper find the Node of an instance id without a cloud provider; the
  # kubelet's systemd drop-in (kubeadm's, also in kURL's packages) reads /etc/default/kubelet.
  echo "KUBELET_EXTRA_ARGS=--provider-id=aws:///$(imds placement/availability-zone)/$(imds instance-id)" > /etc/default/kubelet
}
installer_tokens() {
  # Ids of the bootstrap tokens that exist right after kubeadm init / the kURL installer (theirs,
  # 24 h): revoked once joinkeeper's record is published. The secrets only pass through a pipe.
  kubeadm token list -o json | jq -r '.token | split(".")[0]'
}
revoke_installer_tokens() {
  local id
  for id in $1; do
    if kubeadm token delete "$id" >/dev/null 2>&1; then echo "revoked the installer's bootstrap token $id"; fi
  done
}
imds() {
  local token
  token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
base_packages() {
  retry apt-get update -q
  retry apt-get install -y -q curl ca-certificates gnupg jq unzip
  if ! command -v aws >/dev/null 2>&1; then
    snap wait system seed.loaded || true
    retry snap install aws-cli --classic
    # Run Command and cloud-init do not always have /snap/bin on PATH; the node scripts call aws.
    ln -sf /snap/bin/aws /usr/local/bin/aws
  fi
  # Node name = the private DNS name, so the node-status fallback (private DNS) matches it.
  hostnamectl set-hostname "$(imds local-hostname)"
}
install_node_scripts() {
  local tmp
  tmp=$(mktemp -d)
  retry aws s3 cp --only-show-errors "s3://$JK_SCRIPTS_BUCKET/$JK_SCRIPTS_KEY" "$tmp/node-scripts.zip"
  mkdir -p /opt/joinkeeper
  unzip -oq "$tmp/node-scripts.zip" -d /opt/joinkeeper
  chmod 0755 /opt/joinkeeper/bin/*
  rm -rf "$tmp"
  echo "node scripts installed: $(ls /opt/joinkeeper/bin | tr '\n' ' ')"
}
kubernetes_packages() {
  # kubernetes.io "Installing kubeadm": kernel modules, sysctls, containerd (systemd cgroups),
  # kubelet/kubeadm/kubectl from pkgs.k8s.io, pinned to one minor version.
  printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/k8s.conf
  modprobe overlay
  modprobe br_netfilter
  printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n' > /etc/sysctl.d/99-kubernetes.conf
  sysctl --system >/dev/null
  swapoff -a
  retry apt-get install -y -q containerd apt-transport-https
  mkdir -p /etc/containerd
  containerd config default > /etc/containerd/config.toml
  sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
  systemctl restart containerd
  systemctl enable containerd
  install -d -m 0755 /etc/apt/keyrings
  retry curl -fsSL "https://pkgs.k8s.io/core:/stable:/v$JK_K8S_MINOR/deb/Release.key" -o /tmp/k8s-release.key
  gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /tmp/k8s-release.key
  echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v$JK_K8S_MINOR/deb/ /" > /etc/apt/sources.list.d/kubernetes.list
  # apt reads sources and keyrings as its unprivileged _apt user: these two stay world-readable.
  chmod 0644 /etc/apt/keyrings/kubernetes-apt-keyring.gpg /etc/apt/sources.list.d/kubernetes.list
  retry apt-get update -q
  retry apt-get install -y -q kubelet kubeadm kubectl
  apt-mark hold kubelet kubeadm kubectl
  kubelet_provider_id
  systemctl enable --now kubelet
}
kubeadm_api() {
  # The kubeadm config API version this kubeadm speaks (v1beta3 or v1beta4); the fields used
  # below are the same in both.
  kubeadm config print "$1" | awk '$1 == "apiVersion:" && $2 ~ /^kubeadm/ { print $2; exit }'
}
`;

export const SIGNAL = String.raw`
signal() {
  # CloudFormation wait condition: the stack (and the worker group after it) waits for this.
  local body
  body=$(printf '{"Status":"%s","Reason":"%s","UniqueId":"%s","Data":"%s"}' "$1" "$2" "control-plane-$JK_CP_INDEX" "$2")
  curl -fsS -X PUT -H 'Content-Type:' --data-binary "$body" "$JK_WAIT_HANDLE" || echo "could not signal the wait condition" >&2
}
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then signal FAILURE "user data failed (exit $rc); see /var/log/joinkeeper/user-data.log on $(hostname)"; fi
}
trap on_exit EXIT
wait_for_parameter() {
  local name=$1
  for _ in $(seq 1 270); do
    if aws ssm get-parameter --with-decryption --name "$name" --query Parameter.Value --output text 2>/dev/null; then return 0; fi
    sleep 10
  done
  echo "parameter $name did not appear within 45 minutes" >&2
  return 1
}
`;
