// The control planes' installer steps (user-data.ts picks one by installer and index): kubeadm
// init or join, kURL install or join. Plain bash text, except the TypeScript interpolation of
// READ_JOIN_INPUTS into the two join steps.

export const KUBEADM_INIT = String.raw`
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

export const KUBEADM_JOIN_CONTROL_PLANE = String.raw`
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

export const KURL_INIT = String.raw`
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

export const KURL_JOIN_CONTROL_PLANE = String.raw`
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
