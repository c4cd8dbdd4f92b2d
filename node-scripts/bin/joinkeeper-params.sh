# shellcheck shell=bash
# joinkeeper-params.sh — Parameter Store helpers of the control-plane scripts (publish,
# regenerate, upload-certs, request-certs, forget-certs). Sourced after joinkeeper-lib.sh, never run.
#
# Parameters of a cluster (docs/contracts.md):
#   <prefix>/<cluster>/join-record         SecureString, the join record (regenerate)
#   <prefix>/<cluster>/join-record-meta    String, its non-secret metadata, written right after it
#   <prefix>/<cluster>/control-plane-join  SecureString, the certificate key (HA; upload-certs)
# SecureStrings use the cluster's customer managed key when one is set: --kms-key-id, else
# JOINKEEPER_KMS_KEY_ID (environment or /etc/joinkeeper/joinkeeper.conf), else the account's
# aws/ssm key.

if [[ -n "${JK_PARAMS_LOADED:-}" ]]; then
  return 0
fi
JK_PARAMS_LOADED=1

jk_meta_name() { printf '%s/%s/join-record-meta\n' "$1" "$2"; }
jk_cert_key_name() { printf '%s/%s/control-plane-join\n' "$1" "$2"; }

# jk_kms_key_id [GIVEN] : the key for SecureStrings ('' = the account's aws/ssm key).
jk_kms_key_id() {
  local key=${1:-${JOINKEEPER_KMS_KEY_ID:-$(jk_conf_get JOINKEEPER_KMS_KEY_ID)}}
  if [[ -n "$key" && ! "$key" =~ ^[A-Za-z0-9:/_.-]{1,256}$ ]]; then
    jk_die 2 "KMS key id is not a key id, key ARN or alias"
  fi
  printf '%s\n' "$key"
}

# jk_writer_id : this instance's id for written_by / uploaded_by ("unknown" off EC2).
jk_writer_id() {
  local id
  id=$(jk_instance_id 2>/dev/null) || id=unknown
  printf '%s\n' "$id"
}

# jk_put_meta PREFIX CLUSTER TOKEN_ID CREATED_AT EXPIRES_AT RECORD_VERSION
# Writes <prefix>/<cluster>/join-record-meta (String, overwrite): what the functions read instead
# of the record, and the record's version it describes. Every field was validated by the caller
# (cluster name, token id, timestamps, version), so the JSON needs no escaping; nothing secret.
jk_put_meta() {
  local meta
  [[ "$6" =~ ^[1-9][0-9]{0,9}$ ]] || jk_die "record version '$6' is not a positive number"
  meta=$(printf '{"version":1,"cluster":"%s","token_id":"%s","created_at":"%s","expires_at":"%s","record_version":%s,"written_by":"%s"}' \
    "$2" "$3" "$4" "$5" "$6" "$(jk_writer_id)")
  jk_aws ssm put-parameter --name "$(jk_meta_name "$1" "$2")" --type String --overwrite \
    --value "$meta" --output text >/dev/null
}
