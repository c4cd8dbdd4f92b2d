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
import { KUBEADM_INIT, KUBEADM_JOIN_CONTROL_PLANE, KURL_INIT, KURL_JOIN_CONTROL_PLANE } from './user-data-control-plane';
import { FUNCTIONS, SIGNAL } from './user-data-functions';

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
    `JK_JOIN_MODE=${q(c.joinMode)}`,
    // Tokens: rendered by CloudFormation; quoted so an unexpected character cannot split words.
    `JK_SCRIPTS_BUCKET="${p.scripts.bucket}"`,
    `JK_SCRIPTS_KEY="${p.scripts.key}"`,
    `export AWS_DEFAULT_REGION="${p.region}" AWS_REGION="${p.region}"`,
    'export DEBIAN_FRONTEND=noninteractive PATH="$PATH:/usr/local/bin:/snap/bin"',
    'echo "joinkeeper user data: cluster=$JK_CLUSTER role=$JK_ROLE installer=$JK_INSTALLER"',
  ];
}

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
    '/opt/joinkeeper/bin/joinkeeper-boot-unit --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE" --join-mode "$JK_JOIN_MODE"',
    // The launch lifecycle hook holds this instance in Pending:Wait until its Node is Ready. Bound
    // for the warm pool (target lifecycle state Warmed:*), it logs that and does not join now.
    // In per-instance mode it waits for its own record, which joinkeeper writes once the launch
    // hook holds this instance, and never reads the shared one.
    '/opt/joinkeeper/bin/joinkeeper-join --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE" --join-mode "$JK_JOIN_MODE"',
  ];
}
