// User data of the cluster stack's nodes (Ubuntu 22.04 LTS).
//
// What it does is the well-known kubeadm recipe (kubernetes.io "Installing kubeadm" and
// "Creating Highly Available Clusters with kubeadm"), or kURL's installer; joinkeeper's own part
// is small: install the node scripts from the S3 asset into /opt/joinkeeper, then run
// `joinkeeper-publish` on the first control plane and `joinkeeper-join` on workers.
//
// The text is bash; values that CloudFormation only knows at deploy time (bucket, NLB DNS name,
// wait-condition URL, region) are tokens that CDK renders with Fn::Join. Nothing here uses
// Fn::Sub, so `${var}` is plain bash.
import { ClusterConfig, documentNames } from './config';

export interface NodeScriptsLocation {
  readonly bucket: string;
  readonly key: string;
}

export interface CommonUserDataProps {
  readonly config: ClusterConfig;
  readonly region: string;
  readonly scripts: NodeScriptsLocation;
}

export interface ControlPlaneUserDataProps extends CommonUserDataProps {
  /** 0 initializes the cluster; 1 and 2 (HA) join it as control planes. */
  readonly index: number;
  /** `host:port` every node uses for the API server; undefined in single mode (the node's own IP). */
  readonly endpoint?: string;
  /** Presigned URL of the CloudFormation wait condition handle. */
  readonly waitHandleUrl: string;
  /** The cluster's customer managed key (clusterKmsKey), for the SecureStrings the node scripts write. */
  readonly parameterKeyArn?: string;
}

/** Parameter (SecureString) through which the first control plane hands HA peers its certificate key. */
export function controlPlaneJoinParameter(c: ClusterConfig): string {
  return `${c.parameterPrefix}/${c.clusterName}/control-plane-join`;
}

export function joinRecordParameter(c: ClusterConfig): string {
  return `${c.parameterPrefix}/${c.clusterName}/join-record`;
}

function q(s: string): string {
  // Single-quote for bash; the values were validated by config.ts, this is belt and braces.
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function header(p: CommonUserDataProps, role: 'control-plane' | 'worker'): string[] {
  const c = p.config;
  return [
    '# shellcheck disable=SC2034  # every role gets the same settings block and uses part of it',
    'set -euo pipefail',
    // Everything this script and the node scripts create is root-only; the log folder is 0700
    // and its files 0600. cloud-init keeps stdout in /var/log/cloud-init-output.log and on the
    // console too, so only redacted text is ever printed (run_logged).
    'umask 077',
    'install -d -m 0700 /var/log/joinkeeper',
    'exec > >(tee -a /var/log/joinkeeper/user-data.log) 2>&1',
    `JK_CLUSTER=${q(c.clusterName)}`,
    `JK_PREFIX=${q(c.parameterPrefix)}`,
    `JK_ROLE=${q(role)}`,
    `JK_INSTALLER=${q(c.installer)}`,
    `JK_K8S_MINOR=${q(c.kubernetesVersion)}`,
    `JK_KURL_URL=${q(c.kurlInstallerUrl)}`,
    `JK_CNI_URL=${q(c.cniManifestUrl)}`,
    `JK_POD_CIDR=${q(c.podCidr)}`,
    `JK_TTL=${q(String(c.tokenTtlSeconds))}`,
    `JK_JOIN_DEADLINE=${q(String(c.joinDeadlineSeconds))}`,
    // Tokens: rendered by CloudFormation; quoted so an unexpected character cannot split words.
    `JK_SCRIPTS_BUCKET="${p.scripts.bucket}"`,
    `JK_SCRIPTS_KEY="${p.scripts.key}"`,
    `export AWS_DEFAULT_REGION="${p.region}" AWS_REGION="${p.region}"`,
    'export DEBIAN_FRONTEND=noninteractive PATH="$PATH:/usr/local/bin:/snap/bin"',
    'echo "joinkeeper user data: cluster=$JK_CLUSTER role=$JK_ROLE installer=$JK_INSTALLER"',
  ];
}

const FUNCTIONS = String.raw`
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

const SIGNAL = String.raw`
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

/** User data of control-plane instance `index`. */
export function controlPlaneUserData(p: ControlPlaneUserDataProps): string[] {
  const c = p.config;
  const ha = c.controlPlaneMode === 'ha';
  const lines = [
    ...header(p, 'control-plane'),
    `JK_CP_INDEX=${p.index}`,
    `JK_HA=${ha ? 1 : 0}`,
    `JK_WAIT_HANDLE="${p.waitHandleUrl}"`,
    `JK_CP_JOIN_PARAM=${q(controlPlaneJoinParameter(c))}`,
    `JK_RECORD_PARAM=${q(joinRecordParameter(c))}`,
    FUNCTIONS,
    SIGNAL,
    'base_packages',
    'install_node_scripts',
    // Settings joinkeeper-regenerate reads when Run Command starts it (KEY=VALUE, never sourced).
    'mkdir -p /etc/joinkeeper',
    c.installer === 'kurl'
      ? 'printf \'JOINKEEPER_MODE=kurl\\nJOINKEEPER_KURL_TASKS_URL=%s/tasks.sh\\n\' "$JK_KURL_URL" > /etc/joinkeeper/joinkeeper.conf'
      : "printf 'JOINKEEPER_MODE=kubeadm\\n' > /etc/joinkeeper/joinkeeper.conf",
    ...(p.parameterKeyArn ? [`printf 'JOINKEEPER_KMS_KEY_ID=%s\\n' "${p.parameterKeyArn}" >> /etc/joinkeeper/joinkeeper.conf`] : []),
    `JK_UPLOAD_CERTS_DOCUMENT=${q(documentNames(c.documentPrefix).uploadCerts)}`,
    'ip=$(imds local-ipv4)',
    p.endpoint ? `JK_ENDPOINT="${p.endpoint}"` : 'JK_ENDPOINT="$ip:6443"',
  ];
  if (c.installer === 'kubeadm') {
    lines.push(p.index === 0 ? KUBEADM_INIT : KUBEADM_JOIN_CONTROL_PLANE);
  } else {
    lines.push(p.index === 0 ? KURL_INIT : KURL_JOIN_CONTROL_PLANE);
  }
  lines.push('signal SUCCESS "control plane $JK_CP_INDEX of $JK_CLUSTER is up"');
  if (ha && p.index === 0) {
    // The peers delete the certificate key once joined; this bounds how long it can stay if one
    // never does (a later control plane asks a healthy peer for a fresh one).
    lines.push('/opt/joinkeeper/bin/joinkeeper-forget-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --wait-seconds 3600 || true');
  }
  return lines;
}

const KUBEADM_INIT = String.raw`
kubernetes_packages
api=$(kubeadm_api init-defaults)
version=$(kubeadm version -o short)
certkey=""
if [ "$JK_HA" = 1 ]; then certkey=$(kubeadm certs certificate-key); fi
{
  echo "apiVersion: $api"
  echo "kind: InitConfiguration"
  if [ -n "$certkey" ]; then echo "certificateKey: \"$certkey\""; fi
  echo "nodeRegistration:"
  echo "  name: \"$(hostname)\""
  echo "---"
  echo "apiVersion: $api"
  echo "kind: ClusterConfiguration"
  echo "kubernetesVersion: \"$version\""
  echo "controlPlaneEndpoint: \"$JK_ENDPOINT\""
  echo "networking:"
  echo "  podSubnet: \"$JK_POD_CIDR\""
} > /root/kubeadm-init.yaml
# The config holds the certificate key (HA): removed whether init succeeds or not.
rc=0
if [ "$JK_HA" = 1 ]; then
  run_logged kubeadm-init kubeadm init --config /root/kubeadm-init.yaml --upload-certs --skip-token-print --skip-certificate-key-print || rc=$?
else
  run_logged kubeadm-init kubeadm init --config /root/kubeadm-init.yaml --skip-token-print || rc=$?
fi
rm -f /root/kubeadm-init.yaml
[ "$rc" -eq 0 ] || exit "$rc"
install_tokens=$(installer_tokens)
export KUBECONFIG=/etc/kubernetes/admin.conf
mkdir -p /root/.kube
cp /etc/kubernetes/admin.conf /root/.kube/config
retry kubectl apply -f "$JK_CNI_URL"
if [ "$JK_HA" = 1 ]; then
  # Uploads the certificates again with a fresh key (valid 2 hours) written only to Parameter
  # Store, before the record: a peer that finds the record finds the key too.
  /opt/joinkeeper/bin/joinkeeper-upload-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX"
fi
/opt/joinkeeper/bin/joinkeeper-publish --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --ttl-seconds "$JK_TTL"
revoke_installer_tokens "$install_tokens"
`;

const READ_JOIN_INPUTS = String.raw`
record=$(wait_for_parameter "$JK_RECORD_PARAM")
# A fresh certificate key: the one the first control plane stored, or (on a later day, once the
# first has expired or was deleted) one a healthy peer uploads on request (joinkeeper-upload-certs).
cpjoin=""
for _ in 1 2 3; do
  /opt/joinkeeper/bin/joinkeeper-request-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" \
    --document "$JK_UPLOAD_CERTS_DOCUMENT" --deadline-seconds 2700
  if cpjoin=$(aws ssm get-parameter --with-decryption --name "$JK_CP_JOIN_PARAM" --query Parameter.Value --output text 2>/dev/null); then break; fi
done
[ -n "$cpjoin" ] || { echo "control-plane-join: no certificate key" >&2; exit 1; }
token_id=$(jq -r .token_id <<<"$record")
token_secret=$(jq -r .token_secret <<<"$record")
ca_hash=$(jq -r .ca_cert_hash <<<"$record")
certkey=$(jq -r .certificate_key <<<"$cpjoin")
version=$(jq -r .kubernetes_version <<<"$cpjoin")
[[ "$token_id" =~ ^[a-z0-9]{6}$ && "$token_secret" =~ ^[a-z0-9]{16}$ ]] || { echo "join record: malformed token" >&2; exit 1; }
[[ "$ca_hash" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "join record: malformed ca_cert_hash" >&2; exit 1; }
[[ "$certkey" =~ ^[0-9a-f]{64}$ ]] || { echo "control-plane-join: malformed certificate key" >&2; exit 1; }
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "control-plane-join: malformed kubernetes version" >&2; exit 1; }
`;

const KUBEADM_JOIN_CONTROL_PLANE = String.raw`
kubernetes_packages
${READ_JOIN_INPUTS}
api=$(kubeadm_api join-defaults)
{
  echo "apiVersion: $api"
  echo "kind: JoinConfiguration"
  echo "discovery:"
  echo "  bootstrapToken:"
  echo "    apiServerEndpoint: \"$JK_ENDPOINT\""
  echo "    token: \"$token_id.$token_secret\""
  echo "    caCertHashes: [\"$ca_hash\"]"
  echo "nodeRegistration:"
  echo "  name: \"$(hostname)\""
  echo "controlPlane:"
  echo "  certificateKey: \"$certkey\""
} > /root/kubeadm-join.yaml
rc=0
run_logged kubeadm-join kubeadm join --config /root/kubeadm-join.yaml || rc=$?
rm -f /root/kubeadm-join.yaml
[ "$rc" -eq 0 ] || exit "$rc"
mkdir -p /root/.kube
cp /etc/kubernetes/admin.conf /root/.kube/config
# Joined: the certificate key leaves Parameter Store (a later control plane asks for a new one).
/opt/joinkeeper/bin/joinkeeper-forget-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" || true
`;

const KURL_INIT = String.raw`
# kURL installs containerd, Kubernetes and its add-ons itself.
retry curl -fsSL "$JK_KURL_URL" -o /root/kurl-install.sh
kubelet_provider_id
if [ "$JK_HA" = 1 ]; then
  run_logged kurl-install bash /root/kurl-install.sh ha "load-balancer-address=$JK_ENDPOINT"
else
  run_logged kurl-install bash /root/kurl-install.sh
fi
# kURL leaves its kubeadm configuration (with its bootstrap token) behind: not on this node.
rm -f /opt/replicated/kubeadm.conf /opt/replicated/kubeadm-init-raw.yaml
install_tokens=$(installer_tokens)
export KUBECONFIG=/etc/kubernetes/admin.conf
mkdir -p /root/.kube
cp /etc/kubernetes/admin.conf /root/.kube/config
if [ "$JK_HA" = 1 ]; then
  /opt/joinkeeper/bin/joinkeeper-upload-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX"
fi
/opt/joinkeeper/bin/joinkeeper-publish --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --ttl-seconds "$JK_TTL" --mode kurl
revoke_installer_tokens "$install_tokens"
`;

const KURL_JOIN_CONTROL_PLANE = String.raw`
${READ_JOIN_INPUTS}
# kURL's join script for an additional primary. The token and the certificate key go in an
# Installer patch file (installer-spec-file=, 0600 in a private folder), never on a command line:
# kURL maps spec.kubernetes.kubeadmToken/kubeadmTokenCAHash/certKey/controlPlane/masterAddress to
# the same settings as its kubeadm-token=, kubeadm-token-ca-hash=, cert-key=, control-plane and
# kubernetes-master-address= flags.
retry curl -fsSL "$JK_KURL_URL/join.sh" -o /root/kurl-join.sh
version_number=$(printf '%s' "$version" | sed 's/^v//')
kubelet_provider_id
patch_dir=$(mktemp -d)
{
  echo "apiVersion: cluster.kurl.sh/v1beta1"
  echo "kind: Installer"
  echo "metadata:"
  echo "  name: joinkeeper-join"
  echo "spec:"
  echo "  kubernetes:"
  echo "    masterAddress: \"$JK_ENDPOINT\""
  echo "    kubeadmToken: \"$token_id.$token_secret\""
  echo "    kubeadmTokenCAHash: \"$ca_hash\""
  echo "    certKey: \"$certkey\""
  echo "    controlPlane: true"
} > "$patch_dir/join.yaml"
rc=0
run_logged kurl-join bash /root/kurl-join.sh "installer-spec-file=$patch_dir/join.yaml" "kubernetes-version=$version_number" || rc=$?
rm -rf "$patch_dir" /opt/replicated/kubeadm.conf /opt/replicated/kubeadm-join-raw.yaml
[ "$rc" -eq 0 ] || exit "$rc"
mkdir -p /root/.kube
cp /etc/kubernetes/admin.conf /root/.kube/config
/opt/joinkeeper/bin/joinkeeper-forget-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" || true
`;

/** User data of a worker launched by the Auto Scaling group. */
export function workerUserData(p: CommonUserDataProps): string[] {
  return [
    ...header(p, 'worker'),
    FUNCTIONS,
    'base_packages',
    'install_node_scripts',
    // joinkeeper-join runs `kubeadm join` with the record, in kURL mode too, so every worker
    // needs containerd, kubelet and kubeadm first (in kURL mode: kubernetesVersion must be the
    // kURL installer's Kubernetes minor version).
    'kubernetes_packages',
    // User data runs only at the first boot: for an instance of a warm pool (the group's, or one
    // added to it later) that is while it is prepared for the pool. The systemd unit
    // joinkeeper-join.service joins when the instance leaves the pool for service, and again
    // after a round trip through the pool (its Node was deleted on the way back); after a plain
    // reboot it finds its Node and does nothing. A Running or Hibernated pool's instance never
    // boots again: there the unit is started now and waits.
    '/opt/joinkeeper/bin/joinkeeper-boot-unit --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE"',
    // The launch lifecycle hook holds this instance in Pending:Wait until its Node is Ready. Bound
    // for the warm pool (target lifecycle state Warmed:*), it logs that and does not join now.
    '/opt/joinkeeper/bin/joinkeeper-join --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE"',
  ];
}
