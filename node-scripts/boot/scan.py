"""Look for the cluster's secrets everywhere a boot and the node scripts left traces.

The secrets are known after the fact: the stand-in cluster remembers every bootstrap token and
certificate key it ever minted (state.json `minted_secrets`, revoked and expired ones included),
and Parameter Store keeps every version of the join record. Searched:
  files      every regular file each instance wrote (its overlay upper layer = its emulator node
             folder: /etc, /var/log, /opt, /root, /tmp, /run ..., and the Run Command folders
             the emulator writes there)
  console    each instance's cloud-init output (what cloud-init copies to the EC2 console)
  outputs    the Run Command outputs (GetCommandInvocation stdout and stderr), the wait
             condition signals
  processes  the command line of every process: the stand-ins' own records (every apt-get,
             curl, aws, kubeadm, kubectl ... call in the sandboxes), the stand-in cluster's record
             of every kubeadm/kubectl call (Run Commands too), and samples of all processes in
             the sandboxes and under the emulator (ProcessSampler)
A secret is searched as the whole token (`id.secret`), the token secret alone, and the
certificate key.
"""
import dataclasses
import json
import os

# kURL's own tasks.sh (join_token) creates its token with `kubeadm token create <token>
# --print-join-command`: the token is on that one command line while it runs. kURL offers no
# other way; node-scripts/README.md says so. Such command lines are counted apart.
KURL_TASK_WORDS = ("token", "create")


@dataclasses.dataclass
class ScanReport:
    secrets: int = 0
    files: int = 0
    consoles: int = 0
    outputs: int = 0
    processes: int = 0
    sampled: int = 0
    hits: list = dataclasses.field(default_factory=list)
    kurl_task_lines: int = 0

    def summary(self):
        return ("%d secrets searched in %d files, %d consoles, %d outputs and %d process command lines "
                "(%d of them sampled from /proc): %d hits; %d command lines of kURL's own join_token task"
                % (self.secrets, self.files, self.consoles, self.outputs, self.processes, self.sampled,
                   len(self.hits), self.kurl_task_lines))


def known_secrets(world, extra=()):
    values = set(extra)
    path = os.path.join(world.kube_state(), "state.json")
    if os.path.exists(path):
        with open(path) as fh:
            state = json.load(fh)
        for value in state.get("minted_secrets", []):
            values.add(value)
            if "." in value:
                values.add(value.split(".", 1)[1])
        for token_id, token in state.get("tokens", {}).items():
            values.update(("%s.%s" % (token_id, token["secret"]), token["secret"]))
    prefixes = {os.path.dirname(p) for p in world.parameter_names()}
    for prefix in prefixes:
        for name in ("join-record", "control-plane-join"):
            for version in world.parameter_history("%s/%s" % (prefix, name)):
                try:
                    doc = json.loads(version["Value"])
                except ValueError:
                    continue
                for key in ("token_secret", "certificate_key"):
                    if doc.get(key):
                        values.add(doc[key])
                if doc.get("token_id") and doc.get("token_secret"):
                    values.add("%s.%s" % (doc["token_id"], doc["token_secret"]))
    return {v for v in values if v and len(v) >= 16}


def _is_kurl_task(argv, secret):
    words = list(argv)
    for i in range(len(words) - 2):
        if tuple(words[i:i + 2]) == KURL_TASK_WORDS and secret in words[i + 2]:
            return "--print-join-command" in words
    return False


def scan(world, instance_ids, outputs=(), sampler=None, extra_secrets=()):
    """Searches every trace for every known secret; returns a ScanReport (hits: (where, what))."""
    report = ScanReport()
    secrets = sorted(known_secrets(world, extra_secrets))
    report.secrets = len(secrets)

    def check(where, text):
        for secret in secrets:
            if secret in text:
                report.hits.append((where, secret[:6] + "..."))

    for instance_id in instance_ids:
        upper = world.node_dir(instance_id)
        for folder, _, files in os.walk(upper):
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue  # overlay whiteouts, symlinks
                with open(path, "rb") as fh:
                    text = fh.read().decode(errors="replace")
                report.files += 1
                if os.path.relpath(path, upper) == "var/log/cloud-init-output.log":
                    report.consoles += 1
                check("file %s:%s" % (instance_id, os.path.relpath(path, upper)), text)
    for label, text in list(outputs) + [("wait condition signal", s["body"]) for s in world.signals()]:
        report.outputs += 1
        check("output " + label, text)

    command_lines = [("stand-in record", argv) for _, _, argv in world.calls()]
    calls = os.path.join(world.kube_state(), "calls.jsonl")
    if os.path.exists(calls):
        with open(calls) as fh:
            command_lines += [("stand-in cluster record", [json.loads(line)["tool"]] + json.loads(line)["argv"])
                              for line in fh if line.strip()]
    if sampler is not None:
        command_lines += [("sampled process", list(argv)) for argv in sorted(sampler.argvs)]
        report.sampled = len(sampler.argvs)
    for where, argv in command_lines:
        report.processes += 1
        line = "\0".join(argv)
        for secret in secrets:
            if secret in line:
                if _is_kurl_task(argv, secret):
                    report.kurl_task_lines += 1
                else:
                    report.hits.append(("argv (%s) %s" % (where, " ".join(argv[:3])), secret[:6] + "..."))
                break
    return report
