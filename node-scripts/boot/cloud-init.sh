#!/usr/bin/env bash
# cloud-init.sh — the part of cloud-init a first boot needs, run as PID 1 inside the sandbox
# (sandbox.sh): the instance's user data (saved as /var/lib/cloud/instance/scripts/part-001, as
# cloud-init saves it) runs once as root, its stdout and stderr appended to
# /var/log/cloud-init-output.log (cloud-init also copies that to the instance's console). Then it
# waits, up to 10 s, for what the user data left running (its log's tee) and exits with the user
# data's exit status; whatever still runs dies with the PID namespace.
set -u
script=/var/lib/cloud/instance/scripts/part-001
rc=0
echo "Cloud-init (stand-in) running modules:final; user data $script" >>/var/log/cloud-init-output.log
"$script" >>/var/log/cloud-init-output.log 2>&1 </dev/null || rc=$?
if ((rc != 0)); then
  echo "Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts): exit $rc" >>/var/log/cloud-init-output.log
fi
for _ in {1..200}; do
  pids=(/proc/[0-9]*)
  ((${#pids[@]} <= 1)) && break
  /bin/sleep 0.05
done
exit "$rc"
