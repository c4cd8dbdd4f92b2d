"""Every kubectl command line the node scripts run, parsed by real kubectl builds (1.27 to 1.33).

The stand-in kubectl accepts whatever it is given, so a flag a real kubectl does not know (or no
longer knows) would pass every other test. Here:

1. The command lines are RECORDED, not copied: the real scripts run their kubectl scenarios
   (nodes, node-status, drain, cordon --delete, join --at-boot on a joined worker, upload-certs,
   revoke-tokens)
   against the stand-in, which logs every call with the node script that made it (the "caller" of
   <kube state>/calls.jsonl, see standins/joinkeeper_standin.py). Calls that the suite's earlier
   tests recorded in this session (their own kube states and the emulator's) are added.
2. A static scan of node-scripts/bin finds every kubectl call site (sub-command, resource kind,
   flags) and fails when one was not recorded from its script, so a new kubectl call cannot go
   unchecked: give it a scenario below.
3. Each distinct command line (by shape: names and paths aside) runs through every real build
   found (/usr/lib/google-cloud-sdk/bin/kubectl.1.*, and the Google Cloud CLI's version
   dispatcher `kubectl`) against an API server that cannot be reached: a kubeconfig naming a closed
   loopback port (`--kubeconfig` values of the recording are replaced by it) and
   `--request-timeout=2s`. Classification of each result:
     - parse error (a flag or sub-command kubectl rejects: "unknown flag", "unknown shorthand
       flag", "unknown command", "invalid argument", "flag needs an argument", "Error: unknown",
       "See 'kubectl ... --help' for usage") -> FAIL, the script's command line is wrong;
     - exit 1 with a connection error ("connection refused", "was refused", "Unable to connect",
       "dial tcp") -> pass: kubectl accepted the command line and went for the API server;
     - exit 0 -> pass (nothing needed the server);
     - anything else (e.g. a client-side check that fails before any request, as `kubectl drain`
       or a missing kubeconfig could) -> FAIL, shown with its output, to be looked at.
   kubectl builds its printer only after the request, so the `-o` values are checked apart,
   offline: `kubectl create configmap --dry-run=client -o <format>` parses the same output flags
   (json, yaml, name, jsonpath=..., go-template=...; `wide` and custom-columns exist only for
   `get` and are left to the check above).
The real builds come with the Google Cloud CLI; where it is not installed (CI machines may lack
it) the real-kubectl checks skip and say so; the coverage check runs everywhere.
"""
import concurrent.futures
import glob
import json
import os
import re
import shlex
import socket
import subprocess
import time

import pytest

from conftest import BIN, Harness
from contract import published

GCLOUD_BIN = "/usr/lib/google-cloud-sdk/bin"
# Flags of kubectl (global or of the verbs the scripts use) that take a value as the next word.
VALUE_FLAGS = {"-n", "--namespace", "--kubeconfig", "--context", "--cluster", "--user", "-o", "--output",
               "--timeout", "--request-timeout", "-l", "--selector", "--field-selector", "-s", "--server",
               "--grace-period", "--chunk-size", "-f", "--filename", "-c", "--container", "--token",
               "--pod-selector", "--as", "--as-group", "--cache-dir", "-v", "--v"}
# Verbs whose second word is a resource kind (part of a call's shape).
KIND_VERBS = {"get", "delete", "describe", "patch", "label", "annotate", "edit", "wait"}
PARSE_ERROR = re.compile(r"unknown flag|unknown shorthand flag|unknown command|invalid argument|"
                         r"flag needs an argument|Error: unknown|See 'kubectl[^']*--help' for usage|"
                         r"unknown flag: |accepts at most|requires at least")
CONNECTION_ERROR = re.compile(r"connection refused|was refused|Unable to connect|dial tcp")


# --- the shape of a kubectl command line ------------------------------------------------------
def shape(argv):
    """(verb, kind, flag names, normalized argv) of a kubectl argv. Words starting with `$` (a
    static call site's unresolved variables) are wildcards: None."""
    positional, flags, norm, i = [], set(), [], 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("-") and word != "-":
            name, sep, value = word.partition("=")
            flags.add(name)
            if not sep and name in VALUE_FLAGS and i + 1 < len(argv):
                i += 1
                sep, value = "=", argv[i]
            if name == "--kubeconfig":
                value = "<path>"
            norm.append(name + sep + value)
        else:
            positional.append(None if word.startswith("$") else word)
            limit = 2 if positional[0] in KIND_VERBS else 1
            norm.append(word if len(positional) <= limit else "<name>")
        i += 1
    verb = positional[0] if positional else None
    kind = positional[1] if verb in KIND_VERBS and len(positional) > 1 else None
    return verb, kind, frozenset(flags), tuple(norm)


# --- the static scan ----------------------------------------------------------------------------
def bash_files():
    for path in sorted(glob.glob(os.path.join(BIN, "*"))):
        if not os.path.isfile(path):
            continue
        with open(path, errors="replace") as fh:
            text = fh.read()
        first = text.split("\n", 1)[0]
        if path.endswith(".sh") or ("bash" in first and first.startswith("#!")):
            yield path, text


def unquoted_positions(line):
    """Indexes of the line's characters outside quotes and comments (a `$(` inside double quotes
    opens an unquoted context again). One line at a time: good enough for these scripts, and a
    word wrongly taken for a call shows up as an uncovered site, never as a missed one."""
    out, stack, i = set(), [""], 0
    while i < len(line):
        c, state = line[i], stack[-1]
        if state == "'":
            if c == "'":
                stack.pop()
        elif c == "\\":
            i += 1
        elif state == '"':
            if c == '"':
                stack.pop()
            elif line.startswith("$(", i):
                stack.append("(")
                i += 1
        else:
            if c == "#" and (i == 0 or line[i - 1] in " \t;|&("):
                break
            if c in "'\"":
                stack.append(c)
            elif line.startswith("$(", i):
                stack.append("(")
                i += 1
            elif c == ")" and state == "(":
                stack.pop()
            else:
                out.add(i)
        i += 1
    return out


def call_sites():
    """[(file, line, argv after `kubectl`)] of every kubectl call in node-scripts/bin."""
    sites = []
    for path, text in bash_files():
        lines = text.split("\n")
        n = 0
        while n < len(lines):
            start, line = n + 1, lines[n]
            while line.endswith("\\") and n + 1 < len(lines):
                n += 1
                line = line[:-1] + " " + lines[n].lstrip()
            n += 1
            free = unquoted_positions(line)
            for m in re.finditer(r"(?<![\w./$-])kubectl(?![\w./-])", line):
                if m.start() not in free:
                    continue
                lexer = shlex.shlex(line[m.end():], posix=True, punctuation_chars=";&|<>()")
                lexer.whitespace_split = True
                words = []
                try:
                    for word in lexer:
                        if word and all(ch in ";&|<>()" for ch in word):
                            break
                        words.append(word)
                except ValueError:  # an unclosed quote: the rest of the command is on later lines
                    pass
                if words and words[-1].isdigit():
                    words.pop()  # the `2` of `2>file`
                sites.append((os.path.basename(path), start, words))
    return sites


# --- the recording ------------------------------------------------------------------------------
def add_node(jk, name, instance_id=None):
    args = ["kubectl", "x-standin", "add-node", name, "--ready", "True"]
    if instance_id:
        args += ["--provider-id", "aws:///us-east-1a/" + instance_id]
    jk.tool(*args)


def run_scenarios(jk):
    """The node scripts' kubectl scenarios, on the stand-in cluster."""
    worker, joined = "i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0002"
    add_node(jk, "ip-10-4-0-1.ec2.internal", worker)
    add_node(jk, "rogue-1")
    keep = published(jk.publish().stdout)[1]
    expect = [
        ("joinkeeper-nodes", []),
        ("joinkeeper-node-status", ["--private-dns-names", "-", worker]),
        ("joinkeeper-drain", ["--instance-id", worker, "--timeout-seconds", "30"]),
        ("joinkeeper-cordon", ["--node", "rogue-1"]),
        ("joinkeeper-cordon", ["--node", "rogue-1", "--uncordon", "true"]),
        ("joinkeeper-cordon", ["--node", "rogue-1", "--delete", "true"]),
        ("joinkeeper-upload-certs", ["--cluster", jk.cluster, "--prefix", jk.prefix]),
        ("joinkeeper-revoke-tokens", ["--cluster", jk.cluster, "--prefix", jk.prefix, "--keep-token-id", keep]),
    ]
    for script, args in expect:
        proc = jk.run(script, *args)
        assert proc.returncode == 0, "%s: %s" % (script, proc.stderr)
    # Join mode per-instance: a token minted for the worker, its kubelet's request approved.
    tokens = ["--tokens", jk.cluster, jk.prefix, "600", worker + "=ip-10-4-0-1.ec2.internal", "-"]
    proc = jk.run("joinkeeper-node-status", *tokens, "--output", "facts", "--private-dns-names", "-", worker)
    assert proc.returncode == 0 and " minted" in proc.stdout, proc.stdout + proc.stderr
    token_id = proc.stdout.split()[2]
    jk.tool("kubectl", "x-standin", "add-csr", "ip-10-4-0-1.ec2.internal", "--token-id", token_id,
            "--groups", "system:bootstrappers:joinkeeper:per-instance")
    proc = jk.run("joinkeeper-node-status", *tokens, "--output", "facts", "--private-dns-names", "-", worker)
    assert " approved ip-10-4-0-1.ec2.internal" in proc.stdout, proc.stdout + proc.stderr
    # A joined worker booting again (warm pool): its Node is asked for with the kubelet's kubeconfig.
    env = jk.node_env(joined, dns="ip-10-4-0-2.ec2.internal")
    env["JOINKEEPER_TARGET_LIFECYCLE_STATE"] = "InService"
    conf = os.path.join(env["JOINKEEPER_NODE_DIR"], "etc", "kubernetes")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "kubelet.conf"), "w") as fh:
        fh.write("apiVersion: v1\nkind: Config\n")
    add_node(jk, "ip-10-4-0-2.ec2.internal", joined)
    proc = jk.run("joinkeeper-join", "--cluster", jk.cluster, "--prefix", jk.prefix, "--at-boot", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "is registered" in jk.log_text(), jk.log_text()[-2000:]


def read_calls(path):
    calls = []
    with open(path, errors="replace") as fh:
        for line in fh:
            try:
                call = json.loads(line)
            except ValueError:
                continue
            if call.get("tool") == "kubectl" and call.get("caller"):
                calls.append(call)
    return calls


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, moto_url):
    """{"own": the calls of run_scenarios, "all": those plus the session's other recordings}."""
    jk = Harness(tmp_path_factory.mktemp("real-kubectl"), moto_url)
    run_scenarios(jk)
    jk.check_no_secrets()
    own_file = os.path.join(jk.kube, "calls.jsonl")
    own = read_calls(own_file)
    others = []
    for path in glob.glob(os.path.join(str(tmp_path_factory.getbasetemp()), "**", "calls.jsonl"),
                          recursive=True):
        if os.path.realpath(path) != os.path.realpath(own_file):
            others += read_calls(path)
    return {"own": own, "all": own + others}


def distinct(calls):
    """One recorded argv per shape, in recording order."""
    seen = {}
    for call in calls:
        seen.setdefault(shape(call["argv"])[3], call)
    return list(seen.values())


def test_every_kubectl_call_site_is_recorded_from_its_script(recorded):
    sites = call_sites()
    assert sites, "the scan found no kubectl call in node-scripts/bin"
    own = [(c["caller"], shape(c["argv"])) for c in recorded["own"]]
    problems = []
    for script, line, words in sites:
        verb, kind, flags, _ = shape(words)
        where = "%s:%d: kubectl %s" % (script, line, " ".join(words))
        if verb is None:
            problems.append("%s: the sub-command is not a literal word; extend this test" % where)
            continue
        library = script.endswith(".sh")  # sourced by the scripts: any caller counts
        if not any((library or caller == script) and v == verb and (kind is None or k == kind) and flags <= f
                   for caller, (v, k, f, _) in own):
            problems.append("%s: not recorded from %s (add a scenario in run_scenarios)"
                            % (where, "any script" if library else script))
    assert not problems, "\n".join(problems)


# --- the real builds ----------------------------------------------------------------------------
def real_builds():
    def version(path):
        m = re.search(r"kubectl\.1\.(\d+)$", path)
        return int(m.group(1)) if m else 999
    found = sorted(glob.glob(os.path.join(GCLOUD_BIN, "kubectl.1.*")), key=version)
    dispatcher = os.path.join(GCLOUD_BIN, "kubectl")
    if found and os.access(dispatcher, os.X_OK):
        found.append(dispatcher)
    return [p for p in found if os.access(p, os.X_OK)]


BUILDS = real_builds()
NO_BUILDS = ("no real kubectl builds: %s/kubectl.1.* come with the Google Cloud CLI (google-cloud-cli "
             "with kubectl), which is not installed here (CI machines may not have it)" % GCLOUD_BIN)


def build_id(path):
    name = os.path.basename(path)
    return name[len("kubectl."):] if name.startswith("kubectl.") else "dispatcher"


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory):
    """A kubeconfig naming a loopback port nothing listens on, and the environment to use it."""
    base = tmp_path_factory.mktemp("unreachable-api")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = str(base / "kubeconfig")
    with open(kubeconfig, "w") as fh:
        fh.write("apiVersion: v1\nkind: Config\nclusters:\n- name: unreachable\n  cluster:\n"
                 "    server: https://127.0.0.1:%d\n    insecure-skip-tls-verify: true\n"
                 "contexts:\n- name: unreachable\n  context: {cluster: unreachable, user: nobody}\n"
                 "current-context: unreachable\nusers:\n- name: nobody\n  user: {token: not-a-credential}\n"
                 % port)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "KUBECONFIG": kubeconfig, "LANG": "C.UTF-8",
           "KUBECACHEDIR": str(base / "cache")}
    return kubeconfig, env


def against_unreachable(argv, kubeconfig):
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--kubeconfig" and i + 1 < len(argv):
            out += [word, kubeconfig]
            i += 2
            continue
        out.append("--kubeconfig=" + kubeconfig if word.startswith("--kubeconfig=") else word)
        i += 1
    if not any(w == "--request-timeout" or w.startswith("--request-timeout=") for w in out):
        out.insert(0, "--request-timeout=2s")  # first: never the value of the recording's last flag
    return out


def run_kubectl(build, argv, env):
    proc = subprocess.run([build] + argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=30)
    return proc.returncode, proc.stdout


def classify(rc, output):
    """'ok' or the reason it is not (see the module's docstring)."""
    if PARSE_ERROR.search(output):
        return "kubectl rejected the command line"
    if rc == 0:
        return "ok"
    if rc == 1 and CONNECTION_ERROR.search(output):
        return "ok"
    return "failed before reaching the API server (exit %d), not on flags alone" % rc


def output_formats(calls):
    formats = set()
    for call in calls:
        argv = call["argv"]
        for i, word in enumerate(argv):
            if word in ("-o", "--output") and i + 1 < len(argv):
                formats.add(argv[i + 1])
            elif word.startswith(("-o=", "--output=")):
                formats.add(word.split("=", 1)[1])
            elif word.startswith("-o") and len(word) > 2 and not word.startswith("--"):
                formats.add(word[2:])
    return sorted(f for f in formats if f != "wide" and not f.startswith("custom-columns"))


@pytest.mark.parametrize("build", BUILDS or [None], ids=[build_id(b) for b in BUILDS] or ["none"])
def test_real_kubectl_accepts_every_recorded_command_line(build, recorded, unreachable):
    if build is None:
        pytest.skip(NO_BUILDS)
    kubeconfig, env = unreachable
    calls = distinct(recorded["all"])
    jobs = [(call, against_unreachable(call["argv"], kubeconfig)) for call in calls]
    jobs += [({"caller": "(output format)", "argv": ["-o", fmt]},
              ["create", "configmap", "joinkeeper-format-probe", "--dry-run=client", "-o", fmt])
             for fmt in output_formats(recorded["all"])]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: run_kubectl(build, job[1], env), jobs))
    problems = []
    for (call, argv), (rc, output) in zip(jobs, results):
        verdict = classify(rc, output)
        if verdict != "ok":
            problems.append("%s: kubectl %s\n  (from %s) %s:\n  %s"
                            % (build_id(build), " ".join(shlex.quote(w) for w in call["argv"]), call["caller"],
                               verdict, "\n  ".join(output.strip().splitlines()[-6:])))
    print("%s: %d command lines, %d output formats, %.1fs"
          % (build, len(calls), len(jobs) - len(calls), time.monotonic() - started))
    assert not problems, "\n".join(problems)
