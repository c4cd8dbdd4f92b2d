#!/usr/bin/env bash
# sandbox.sh — one emulated instance's first boot, in a sandbox that cannot change this machine.
#
# Started by node-scripts/boot/world.py as
#   unshare --mount --uts --ipc --pid --fork --kill-child [--user --map-root-user] bash sandbox.sh
# so it is PID 1 of new mount, UTS, IPC and PID namespaces (and root of a user namespace when not
# started as root). It mounts an overlay of this machine's / with the instance's own folder as
# the upper (writable) layer: whatever the boot writes (/etc, /var/log, /opt, /usr, /root, /tmp,
# /run, /snap) lands in that folder and nowhere else. /proc is the new PID namespace's; /dev and
# /sys are bound from the host; a few folders are bound at their own path (the stand-in cluster,
# the records), and the repository read-only. The hostname is the namespace's own (hostnamectl
# sets it). Then it chroots into the overlay and runs cloud-init.sh there.
#
# Environment: JK_SANDBOX_ROOT (mount point), JK_SANDBOX_UPPER, JK_SANDBOX_WORK (overlay layers,
# same filesystem), JK_SANDBOX_BINDS / JK_SANDBOX_RO_BINDS (':'-separated absolute folders),
# JK_SANDBOX_HOSTNAME; everything else is the instance's environment and passes through.
set -euo pipefail
root=$JK_SANDBOX_ROOT
mount -t overlay overlay -o "lowerdir=/,upperdir=$JK_SANDBOX_UPPER,workdir=$JK_SANDBOX_WORK" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
IFS=: read -r -a rw <<<"${JK_SANDBOX_BINDS:-}"
IFS=: read -r -a ro <<<"${JK_SANDBOX_RO_BINDS:-}"
# Read-only folders first, then the writable ones: a writable folder inside a read-only one (the
# demo's state under the repository) is mounted over it and stays writable.
for dir in "${ro[@]}"; do
  [[ -n "$dir" ]] || continue
  mkdir -p "$root$dir"
  mount --bind "$dir" "$root$dir"
  mount -o remount,bind,ro "$root$dir"
done
for dir in "${rw[@]}"; do
  [[ -n "$dir" ]] || continue
  mkdir -p "$root$dir"
  mount --bind "$dir" "$root$dir"
done
hostname "$JK_SANDBOX_HOSTNAME"
init=$JK_SANDBOX_INIT
exec env -u JK_SANDBOX_ROOT -u JK_SANDBOX_UPPER -u JK_SANDBOX_WORK -u JK_SANDBOX_BINDS \
  -u JK_SANDBOX_RO_BINDS -u JK_SANDBOX_HOSTNAME -u JK_SANDBOX_INIT chroot "$root" /bin/bash "$init"
