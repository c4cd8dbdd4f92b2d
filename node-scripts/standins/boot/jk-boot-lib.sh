# shellcheck shell=bash
# jk-boot-lib.sh — shared by the boot stand-ins (TEST DOUBLES for what a fresh Ubuntu EC2 instance
# has: apt-get, snap, systemctl, ...). Sourced, never run. They exist only inside the boot sandbox
# (node-scripts/boot/), whose root is a private overlay: the files they write land in the node's
# own folder, never on this machine. None of them reaches a network.
#
# Environment (set by the boot harness):
#   JOINKEEPER_BOOT_RECORD     file that gets one line per call: "<epoch> <instance> <base64 argv>"
#                              (argv NUL-separated, the tool name first)
#   JOINKEEPER_BOOT_INSTANCE   the instance id the sandbox stands for
#   JOINKEEPER_BOOT_FAIL       space-separated "<tool>:<word>" rules: the tool fails when one of its
#                              arguments is <word> (or always, for <word> = *)
#   JOINKEEPER_BOOT_STANDINS   the repository's node-scripts/standins folder
#   JOINKEEPER_BOOT_PYTHON     the python3 the Python stand-ins run with

jk_record() {
  [[ -n "${JOINKEEPER_BOOT_RECORD:-}" ]] || return 0
  local enc
  enc=$(printf '%s\0' "$@" | base64 -w0)
  printf '%s %s %s\n' "$(date +%s.%N)" "${JOINKEEPER_BOOT_INSTANCE:--}" "$enc" >>"$JOINKEEPER_BOOT_RECORD"
}

# jk_should_fail TOOL ARG... : 0 when a JOINKEEPER_BOOT_FAIL rule says this call fails.
jk_should_fail() {
  local tool=$1 rule word arg
  shift
  for rule in ${JOINKEEPER_BOOT_FAIL:-}; do
    [[ "${rule%%:*}" == "$tool" ]] || continue
    word=${rule#*:}
    [[ "$word" == "*" ]] && return 0
    for arg in "$@"; do
      [[ "$arg" == "$word" ]] && return 0
    done
  done
  return 1
}

# jk_install_tool NAME : puts the program NAME in /usr/bin as a package would, as a recording
# wrapper around its stand-in (kubeadm, kubectl: node-scripts/standins; others: pkg/ here).
jk_install_tool() {
  local name=$1 target
  case "$name" in
    kubeadm | kubectl) target="$JOINKEEPER_BOOT_PYTHON $JOINKEEPER_BOOT_STANDINS/$name" ;;
    *) target="$JOINKEEPER_BOOT_STANDINS/boot/pkg/$name" ;;
  esac
  mkdir -p /usr/bin
  rm -f "/usr/bin/$name" # a package replaces whatever was there (never follows a symlink)
  printf '#!/bin/bash\n# %s, as installed by a stand-in package manager (a test double)\n. "%s/boot/jk-boot-lib.sh"\njk_record %s "$@"\nexec %s "$@"\n' \
    "$name" "$JOINKEEPER_BOOT_STANDINS" "$name" "$target" >"/usr/bin/$name"
  chmod 0755 "/usr/bin/$name"
}
