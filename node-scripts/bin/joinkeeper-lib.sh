# shellcheck shell=bash
# joinkeeper-lib.sh — helpers shared by the joinkeeper node scripts. Sourced, never run.
#
# Instance facts come from the EC2 instance metadata service (IMDSv2) unless the local emulator
# provides them: JOINKEEPER_INSTANCE_ID, JOINKEEPER_PRIVATE_DNS, JOINKEEPER_AVAILABILITY_ZONE.
# Paths: JOINKEEPER_LOG_DIR (default /var/log/joinkeeper, kept 0700), JOINKEEPER_LOCK_DIR
# (default /run/lock), JOINKEEPER_NODE_DIR (a fake root for /etc paths in local emulation; empty
# on real nodes).
#
# Secrets: a token secret is only ever held in a shell variable, a pipe, or a 0600 file inside a
# private temporary directory that is removed on exit. It is never an argument of a command (so
# never visible in `ps`) and never written to stdout, stderr or a log. Every script runs under
# umask 077, so whatever it creates is readable by root only.

if [[ -n "${JK_LIB_LOADED:-}" ]]; then
  return 0
fi
JK_LIB_LOADED=1
umask 077

JK_BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JK_PROG=${JK_PROG:-$(basename "$0")}
JK_TMP=""
export AWS_PAGER=""

jk_err() { printf '%s: %s\n' "$JK_PROG" "$*" >&2; }
jk_die() {
  local code=1
  if [[ "$1" =~ ^[0-9]+$ ]]; then code=$1; shift; fi
  jk_err "error: $*"
  exit "$code"
}

# The one redaction filter (stdin to stdout, line-buffered) every joinkeeper script and the user
# data pass command output through before it reaches a log, the console or a Run Command output.
# It replaces every secret shape joinkeeper handles:
#  - a bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` (kubeadm join lines, kURL's kubeadm-token=...,
#    JoinConfiguration YAML);
#  - a token secret or certificate key in a JSON/YAML field or a key=value / flag pair:
#    "token_secret", "certificate_key", certificateKey:, certKey:, token-secret=, cert-key=,
#    cert_key=, --certificate-key VALUE / --certificate-key=VALUE;
#  - any run of 64 or more hex digits (the shape of kubeadm's certificate key), except the one
#    that follows `sha256:`: the CA certificate hash pins the cluster CA's public key, which
#    every client can read from the cluster-info ConfigMap; it is public and stays readable.
jk_redact() {
  LC_ALL=C sed -u -E \
    -e 's/[a-z0-9]{6}\.[a-z0-9]{16}/<redacted-token>/g' \
    -e 's/("(token_secret|certificate_key|certificateKey|certKey|cert_key)"[[:space:]]*:[[:space:]]*")[^"]*"/\1<redacted>"/g' \
    -e 's/((certificateKey|certKey|token_secret|token-secret|cert-key|cert_key|certificate-key|certificate_key)[=:][[:space:]]*"?)[^"[:space:],]+/\1<redacted>/g' \
    -e 's/(--certificate-key([[:space:]]+|=))[^[:space:]]+/\1<redacted>/g' \
    -e 's/(token(-secret)?[=:][[:space:]]*)[a-z0-9]{16}/\1<redacted>/g' \
    -e 's/(sha256:)([0-9a-fA-F]{64})/\1@JKCA@\2/g' \
    -e ':hex' -e 's/(^|[^0-9a-fA-F@])[0-9a-fA-F]{64,}/\1<redacted-key>/' -e 't hex' \
    -e 's/@JKCA@//g'
}

jk_cleanup() {
  if [[ -n "$JK_TMP" && -d "$JK_TMP" ]]; then
    rm -rf -- "$JK_TMP"
  fi
}

# A private (0700) temporary directory for files that may hold secrets; removed on exit.
jk_tmpdir() {
  if [[ -z "$JK_TMP" ]]; then
    local base=${TMPDIR:-/tmp}
    if [[ -z "${TMPDIR:-}" && -d /run && -w /run ]]; then base=/run; fi
    JK_TMP=$(umask 077 && mktemp -d "$base/joinkeeper.XXXXXXXX")
    trap jk_cleanup EXIT
  fi
}

jk_json() { python3 "$JK_BIN/joinkeeper-json.py" "$@"; }

jk_now() { date -u +%s; }
jk_ts() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
jk_epoch() { date -u -d "$1" +%s; }

# --- validation of outside input -------------------------------------------------------------
jk_valid_cluster() { [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]]; }
jk_valid_instance_id() { [[ "$1" =~ ^i-[0-9a-f]{8}([0-9a-f]{9})?$ ]]; }
jk_valid_prefix() { [[ "$1" =~ ^(/[A-Za-z0-9_.-]{1,64}){1,10}$ ]]; }
# jk_valid_uint VALUE MIN MAX
jk_valid_uint() {
  [[ "$1" =~ ^[0-9]{1,9}$ ]] || return 1
  local v=$((10#$1))
  ((v >= $2 && v <= $3))
}

# Strips one trailing slash, then validates; prints the normalized prefix.
jk_prefix() {
  local p=${1%/}
  jk_valid_prefix "$p" || jk_die 2 "parameter prefix is not valid (expected /name[/name...], letters, digits, _ . -)"
  printf '%s\n' "$p"
}

# jk_cluster_prefix CLUSTER PREFIX : the check every script makes of its --cluster and --prefix:
# exit 2 with the reason when the cluster name or the prefix is not valid; prints the normalized
# prefix. Usage: prefix=$(jk_cluster_prefix "$cluster" "$prefix")
jk_cluster_prefix() {
  jk_valid_cluster "$1" || jk_die 2 "cluster name is not valid (expected [A-Za-z0-9][A-Za-z0-9_.-]{0,62})"
  jk_prefix "$2"
}

jk_record_name() { printf '%s/%s/join-record\n' "$1" "$2"; }

# joinkeeper's log folder (0700): created when missing, its mode tightened when it exists.
jk_log_dir() {
  local dir=${JOINKEEPER_LOG_DIR:-/var/log/joinkeeper}
  mkdir -p "$dir" || return 1
  chmod 0700 "$dir" 2>/dev/null || true
  printf '%s\n' "$dir"
}
jk_lock_dir() { printf '%s\n' "${JOINKEEPER_LOCK_DIR:-/run/lock}"; }
# A path under the node's root: /etc/... on a real node, $JOINKEEPER_NODE_DIR/etc/... locally.
jk_root_path() { printf '%s%s\n' "${JOINKEEPER_NODE_DIR:-}" "$1"; }

# --- instance metadata (IMDSv2), overridable by the emulator -----------------------------------
JK_IMDS_TOKEN=""
jk_imds_token() {
  if [[ -z "$JK_IMDS_TOKEN" ]]; then
    JK_IMDS_TOKEN=$(curl -sS -f --max-time 5 --retry 3 -X PUT \
      -H "X-aws-ec2-metadata-token-ttl-seconds: 300" \
      "http://169.254.169.254/latest/api/token") || jk_die "instance metadata service (IMDSv2) unreachable"
  fi
}
jk_imds() {
  local path=$1
  jk_imds_token
  curl -sS -f --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $JK_IMDS_TOKEN" \
    "http://169.254.169.254/latest/meta-data/$path" || jk_die "instance metadata $path unavailable"
}
# jk_imds_optional PATH : like jk_imds, but metadata this instance does not have (HTTP 404)
# prints nothing and returns 3 instead of failing.
jk_imds_optional() {
  local path=$1 out
  jk_imds_token
  if out=$(curl -sS -f --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $JK_IMDS_TOKEN" \
      "http://169.254.169.254/latest/meta-data/$path" 2>&1); then
    printf '%s\n' "$out"
    return 0
  fi
  [[ "$out" == *"error: 404"* ]] && return 3
  jk_die "instance metadata $path unavailable"
}

jk_instance_id() {
  local v=${JOINKEEPER_INSTANCE_ID:-}
  [[ -n "$v" ]] || v=$(jk_imds instance-id) || exit 1
  jk_valid_instance_id "$v" || jk_die "instance id from metadata is not valid"
  printf '%s\n' "$v"
}

jk_private_dns() {
  local v=${JOINKEEPER_PRIVATE_DNS:-}
  [[ -n "$v" ]] || v=$(jk_imds local-hostname) || exit 1
  v=${v,,}
  [[ "$v" =~ ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$ ]] || jk_die "private DNS name from metadata is not valid"
  printf '%s\n' "$v"
}

jk_availability_zone() {
  local v=${JOINKEEPER_AVAILABILITY_ZONE:-}
  [[ -n "$v" ]] || v=$(jk_imds placement/availability-zone) || exit 1
  [[ "$v" =~ ^[a-z]{2}(-[a-z0-9]+)+[a-z]?$ ]] || jk_die "availability zone from metadata is not valid"
  printf '%s\n' "$v"
}

# Where Auto Scaling is taking this instance: InService (bound for service), Warmed:Stopped,
# Warmed:Running or Warmed:Hibernated (entering or going back to the warm pool), Terminated.
# IMDS latest/meta-data/autoscaling/target-lifecycle-state; in local emulation
# (JOINKEEPER_NODE_DIR set) the emulator's stand-in, the file
# <node dir>/imds/autoscaling/target-lifecycle-state (current), else
# JOINKEEPER_TARGET_LIFECYCLE_STATE (its value when the script started). An instance that is not
# in an Auto Scaling group has no such metadata: InService (nothing to wait for).
jk_target_lifecycle_state() {
  local v="" file rc=0
  if [[ -n "${JOINKEEPER_NODE_DIR:-}" ]]; then
    file="${JOINKEEPER_NODE_DIR%/}/imds/autoscaling/target-lifecycle-state"
    if [[ -e "$file" ]]; then
      # The emulator rewrites the file at each move: an empty read is a write in progress.
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        v=$(<"$file") || v=""
        v=${v//[[:space:]]/}
        [[ -z "$v" ]] || break
        sleep 0.1
      done
    fi
    [[ -n "$v" ]] || v=${JOINKEEPER_TARGET_LIFECYCLE_STATE:-InService}
  elif [[ -n "${JOINKEEPER_TARGET_LIFECYCLE_STATE:-}" ]]; then
    v=$JOINKEEPER_TARGET_LIFECYCLE_STATE
  else
    v=$(jk_imds_optional autoscaling/target-lifecycle-state) || rc=$?
    if ((rc == 3)); then v=InService; elif ((rc != 0)); then exit 1; fi
  fi
  [[ "$v" =~ ^[A-Za-z]{1,32}(:[A-Za-z]{1,32}){0,2}$ ]] || jk_die "target lifecycle state from metadata is not valid"
  printf '%s\n' "$v"
}

# The AWS CLI needs a region; on a node without AWS_REGION it is the zone minus its letter.
jk_ensure_region() {
  if [[ -z "${AWS_REGION:-}" && -z "${AWS_DEFAULT_REGION:-}" ]]; then
    local az
    az=$(jk_availability_zone)
    export AWS_DEFAULT_REGION=${az%[a-z]}
  fi
}

jk_aws() { aws --cli-connect-timeout 5 --cli-read-timeout 30 "$@"; }

# Control-plane tools talk to the API server with the admin kubeconfig unless told otherwise.
jk_control_plane_env() {
  if [[ -z "${KUBECONFIG:-}" && -r /etc/kubernetes/admin.conf ]]; then
    export KUBECONFIG=/etc/kubernetes/admin.conf
  fi
}

# Settings a control-plane node may keep in /etc/joinkeeper/joinkeeper.conf (KEY=VALUE lines,
# only the keys below are read; nothing is sourced or evaluated).
jk_conf_get() {
  local key=$1 file line
  file=$(jk_root_path /etc/joinkeeper/joinkeeper.conf)
  [[ -r "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" == "$key="* ]]; then
      line=${line#"$key="}
      line=${line#\"}; line=${line%\"}
      printf '%s\n' "$line"
      return 0
    fi
  done <"$file"
}

# --- Nodes ---------------------------------------------------------------------------------------
# jk_node_lookup OUTFILE ID... : writes "<id> <name|-> <Ready|NotReady|Unknown|Absent>" lines.
# A Node matches an instance when its providerID names it (aws:///<zone>/<instance-id>). For ids
# no providerID matches, a Node WITHOUT a providerID whose name is the instance's private DNS
# name matches; a Node whose providerID names another instance never does (a terminated
# instance's Node, its IP reused, must not lend its Ready condition). The private DNS names come
# from JK_DNS_PAIRS ("i-...=ip-... ..." as the caller passed them: no AWS call at all); without
# them, and only when some Node has no providerID, one ec2:DescribeInstances call for all the
# unmatched ids looks them up (best effort; JOINKEEPER_EC2_LOOKUP=0 turns it off).
JK_DNS_PAIRS=${JK_DNS_PAIRS:-}
jk_node_lookup() {
  local out=$1; shift
  local ids="$*"
  jk_tmpdir
  local nodes="$JK_TMP/nodes.json" dnsmap="$JK_TMP/dns-map"
  if ! kubectl get nodes -o json >"$nodes" 2>"$JK_TMP/kubectl.err"; then
    jk_redact <"$JK_TMP/kubectl.err" | tail -n 5 >&2
    jk_die "kubectl get nodes failed; cannot read Node status"
  fi
  if [[ -n "$JK_DNS_PAIRS" ]]; then
    tr ' =' '\n ' <<<"$JK_DNS_PAIRS" | sed '/^$/d' >"$dnsmap"
    jk_json node-lookup --nodes "$nodes" --ids "$ids" --dns-map "$dnsmap" >"$out" || jk_die "could not read the Node list"
    return 0
  fi
  jk_json node-lookup --nodes "$nodes" --ids "$ids" --need-dns "$JK_TMP/need-dns" >"$out" \
    || jk_die "could not read the Node list"
  # need-dns: the unmatched ids, written only when some Node has no providerID.
  if [[ -s "$JK_TMP/need-dns" && "${JOINKEEPER_EC2_LOOKUP:-1}" != 0 ]]; then
    local joined
    joined=$(paste -sd, "$JK_TMP/need-dns")
    if (jk_ensure_region && jk_aws ec2 describe-instances --filters "Name=instance-id,Values=$joined" \
        --query 'Reservations[].Instances[].[InstanceId,PrivateDnsName]' --output text) \
        >"$dnsmap" 2>"$JK_TMP/ec2.err"; then
      jk_json node-lookup --nodes "$nodes" --ids "$ids" --dns-map "$dnsmap" >"$out" \
        || jk_die "could not read the Node list"
    else
      jk_err "note: could not look up private DNS names (ec2:DescribeInstances); matched by providerID only"
    fi
  fi
}
