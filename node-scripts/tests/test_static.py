"""shellcheck on every script, and the SSM Command documents checked as SSM documents."""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import BIN, NODE_SCRIPTS, STANDINS, VENV_BIN

DOCUMENTS = os.path.join(NODE_SCRIPTS, "documents")

# docs/contracts.md: document name -> its parameters.
CONTRACT = {
    "joinkeeper-regenerate": {"ClusterName", "ParameterPrefix", "TokenTtlSeconds"},
    "joinkeeper-drain": {"InstanceId", "Node", "DrainTimeoutSeconds", "KeepNode"},
    "joinkeeper-join-log": {"Lines"},
    "joinkeeper-node-status": {"InstanceIds", "PrivateDnsNames", "PrivateIps", "Output", "TokenCluster", "TokenPrefix",
                               "TokenTtl", "JoinTokens", "RevokeTokens"},
    "joinkeeper-nodes": {"StartAfter"},
    "joinkeeper-cordon": {"NodeName", "Delete", "InstanceId", "PrivateDnsName", "Uncordon"},
    "joinkeeper-upload-certs": {"ClusterName", "ParameterPrefix"},
    "joinkeeper-revoke-tokens": {"ClusterName", "ParameterPrefix", "KeepTokenId"},
}
GOOD = {
    "ClusterName": ["demo", "prod-eu.1", "A", "a" * 63],
    "ParameterPrefix": ["/joinkeeper", "/org/team/joinkeeper", "/a.b_c-d"],
    "TokenTtlSeconds": ["600", "86400", "604800"],
    "InstanceIds": ["i-0123456789abcdef0", "i-01234567", "i-0123456789abcdef0 i-01234567 i-fedcba9876543210f",
                    " ".join(["i-0123456789abcdef0"] * 600)],
    "InstanceId": ["i-0123456789abcdef0", "i-01234567"],
    "DrainTimeoutSeconds": ["1", "300", "9999"],
    "Lines": ["1", "100", "999"],
    "PrivateDnsNames": ["-", "i-0123456789abcdef0=ip-10-0-1-5.ec2.internal",
                        "i-01234567=ip-10-0-1-5.eu-west-1.compute.internal "
                        "i-0123456789abcdef0=i-0123456789abcdef0.us-east-1.compute.internal",
                        " ".join(["i-0123456789abcdef0=ip-10-0-1-5.ec2.internal"] * 600)],
    "StartAfter": ["-", "ip-10-0-1-5.ec2.internal", "a"],
    "NodeName": ["ip-10-0-1-5.ec2.internal", "a", "node-1", "a" * 253, "-"],
    "PrivateDnsName": ["-", "ip-10-0-1-5.ec2.internal", "ip-10-0-1-5.eu-west-1.compute.internal"],
    "Node": ["-", "ip-10-0-1-5", "ip-10-0-1-5.ec2.internal", "a" * 253],
    "PrivateIps": ["-", "i-0123456789abcdef0=10.0.1.5", "i-01234567=10.0.1.5 i-0123456789abcdef0=172.31.255.254",
                   " ".join(["i-0123456789abcdef0=10.0.1.5"] * 600)],
    "Delete": ["true", "false"],
    "Uncordon": ["true", "false"],
    "KeepNode": ["true", "false"],
    "KeepTokenId": ["abcdef", "0a1b2c", "zzzzzz"],
    "Output": ["full", "brief", "facts", "zfacts"],
    "TokenCluster": ["-", "demo", "prod-eu.1", "a" * 63],
    "TokenPrefix": ["/joinkeeper", "/org/team/joinkeeper"],
    "TokenTtl": ["60", "900", "86400"],
    "JoinTokens": ["-", "i-0123456789abcdef0=ip-10-0-1-5.ec2.internal",
                   " ".join(["i-0123456789abcdef0=ip-10-0-1-5.ec2.internal"] * 600)],
    "RevokeTokens": ["-", "i-0123456789abcdef0", "i-0123456789abcdef0 i-01234567"],
}
# Shell text that must never get through any parameter.
HOSTILE = ["'; rm -rf /", "$(id)", "`id`", "demo\nrm -rf /", "demo\n", "\ndemo", "demo'", "demo;id",
           "demo && id", "demo|id", "$HOME", "${IFS}", "demo id", "", "i-0123456789abcdef0\n",
           "i-0123456789abcdef0'", "i-0123456789abcdef0;id", "1\n", "1;id", "/joinkeeper;id",
           "/joinkeeper'", "/$(id)", "600`id`", "i-0123456789abcdef0 $(id)", "'{{ x }}'"]
# Values of the right shape but out of the parameter's range.
BAD = {
    "ClusterName": ["-demo", ".demo", "a" * 64, "dé"],
    "ParameterPrefix": ["joinkeeper", "/joinkeeper/", "//x", "/a b", "/../x/" + "y" * 70],
    "TokenTtlSeconds": ["0", "-1", "60", "0600", "1e5", "10000000"],
    "InstanceIds": ["i-0123456789ABCDEF0", "i-0123", "i-0123456789abcdef0  i-01234567", " i-01234567",
                    " ".join(["i-0123456789abcdef0"] * 601)],
    "InstanceId": ["i-0123456789ABCDEF0", "i-0123", "i-0123456789abcdef0 i-01234567", "0123456789abcdef0"],
    "DrainTimeoutSeconds": ["0", "-1", "10000", "05"],
    "Lines": ["0", "1000", "-5", "01"],
    "PrivateDnsNames": ["i-0123=ip-1", "i-0123456789abcdef0=IP-10-0-1-5.ec2.internal", "i-0123456789abcdef0",
                        "=ip-10-0-1-5", "i-0123456789abcdef0=ip-10-0-1-5.ec2.internal ", "--",
                        "i-0123456789abcdef0=ip-10-0-1-5.ec2.internal  i-01234567=ip-1",
                        " ".join(["i-0123456789abcdef0=ip-10-0-1-5.ec2.internal"] * 601)],
    "StartAfter": ["--", "A", "-a", "a-", "a" * 254],
    "NodeName": ["Node1", "-node", "node-", "a" * 254, "--"],
    "PrivateDnsName": ["IP-10-0-1-5.ec2.internal", "-ip", "--", "a" * 254],
    "Node": ["Node1", "-node", "node-", "a" * 254, "--"],
    "PrivateIps": ["i-0123=10.0.1.5", "i-0123456789abcdef0=10.0.1", "i-0123456789abcdef0=10.0.1.5 ",
                   "i-0123456789abcdef0=fe80::1", "--", " ".join(["i-0123456789abcdef0=10.0.1.5"] * 601)],
    "Delete": ["yes", "True", "1", "-"],
    "Uncordon": ["yes", "True", "1", "-"],
    "KeepNode": ["yes", "True", "1", "-"],
    "KeepTokenId": ["abcde", "abcdefg", "ABCDEF", "abc-ef", "abcdef.0123456789abcdef"],
    "Output": ["Full", "short", "-", "fullbrief"],
    "TokenCluster": ["--", "-demo", "a" * 64],
    "TokenPrefix": ["joinkeeper", "/joinkeeper/"],
    "TokenTtl": ["0", "0600", "100000"],
    "JoinTokens": ["--", "i-0123456789abcdef0", "i-0123456789abcdef0=IP-1", "i-0123456789abcdef0=a ",
                   " ".join(["i-0123456789abcdef0=ip-10-0-1-5.ec2.internal"] * 601)],
    "RevokeTokens": ["--", "i-0123", "i-0123456789abcdef0 ", " ".join(["i-01234567"] * 601)],
}

BASH_SCRIPTS = sorted(
    [p for p in glob.glob(os.path.join(BIN, "*")) if not p.endswith(".py") and os.path.isfile(p)]
    + [os.path.join(STANDINS, "kurl", "tasks.sh")])


def test_shellcheck_passes_on_every_script():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install -y shellcheck)"
    assert len(BASH_SCRIPTS) >= 8
    for script in BASH_SCRIPTS:
        with open(script) as fh:
            head = fh.read(300)
        assert head.startswith("#!/usr/bin/env bash") or "shellcheck shell=bash" in head, script
        if head.startswith("#!"):
            assert "set -euo pipefail" in open(script).read(), script
    proc = subprocess.run([shellcheck, "-x", "-S", "style"] + BASH_SCRIPTS, cwd=NODE_SCRIPTS,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout


# The scripts that take --cluster and --prefix (joinkeeper-publish runs joinkeeper-regenerate).
CLUSTER_SCRIPTS = sorted(os.path.basename(p) for p in BASH_SCRIPTS if "--cluster)" in open(p).read())
CLUSTER_MESSAGE = "cluster name is not valid (expected [A-Za-z0-9][A-Za-z0-9_.-]{0,62})"
PREFIX_MESSAGE = "parameter prefix is not valid (expected /name[/name...], letters, digits, _ . -)"


def test_the_cluster_and_prefix_check_lives_in_one_library_function():
    assert len(CLUSTER_SCRIPTS) >= 7, CLUSTER_SCRIPTS
    for name in CLUSTER_SCRIPTS:
        with open(os.path.join(BIN, name)) as fh:
            text = fh.read()
        assert text.count('prefix=$(jk_cluster_prefix "$cluster" "$prefix")') == 1, name
        for pasted in ("jk_valid_cluster", "jk_prefix ", "cluster name is not valid", "parameter prefix is not valid"):
            assert pasted not in text, "%s checks the cluster itself (%s)" % (name, pasted)
    with open(os.path.join(BIN, "joinkeeper-lib.sh")) as fh:
        lib = fh.read()
    assert lib.count(CLUSTER_MESSAGE) == 1 and lib.count(PREFIX_MESSAGE) == 1


@pytest.mark.parametrize("args,message", [
    (["--cluster", "x y", "--prefix", "/joinkeeper"], CLUSTER_MESSAGE),
    (["--cluster", "-demo"], CLUSTER_MESSAGE),
    (["--prefix", "/joinkeeper"], CLUSTER_MESSAGE),
    (["--cluster", "demo", "--prefix", "/joinkeeper;id"], PREFIX_MESSAGE),
    (["--cluster", "x y", "--prefix", "joinkeeper"], CLUSTER_MESSAGE),
])
def test_every_script_refuses_a_bad_cluster_or_prefix_before_doing_anything(jk, args, message):
    for name in CLUSTER_SCRIPTS + ["joinkeeper-publish"]:
        proc = jk.run(name, *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", "%s: error: %s\n" % (name, message)), name
    assert not os.path.exists(jk.argv_log), "no kubeadm, kubectl, aws or python3 call"


def test_python_helpers_compile():
    for path in [os.path.join(BIN, "joinkeeper-json.py"), os.path.join(STANDINS, "kubeadm"),
                 os.path.join(STANDINS, "kubectl"), os.path.join(STANDINS, "joinkeeper_standin.py")]:
        with open(path) as fh:
            compile(fh.read(), path, "exec")


def load_documents():
    docs = {}
    for path in sorted(glob.glob(os.path.join(DOCUMENTS, "*.json"))):
        with open(path) as fh:
            docs[os.path.basename(path)[:-5]] = json.load(fh)
    return docs


def placeholders(command):
    return re.findall(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", command)


def test_documents_have_the_contract_structure():
    docs = load_documents()
    assert set(docs) == set(CONTRACT)
    for name, doc in docs.items():
        assert set(doc) == {"schemaVersion", "description", "parameters", "mainSteps"}, name
        assert doc["schemaVersion"] == "2.2"
        assert isinstance(doc["description"], str) and doc["description"]
        params = doc["parameters"]
        assert set(params) == CONTRACT[name], name
        for pname, spec in params.items():
            assert re.fullmatch(r"[A-Za-z0-9]+", pname)
            assert spec["type"] == "String", (name, pname)
            assert isinstance(spec.get("allowedPattern"), str) and spec["allowedPattern"], (name, pname)
            assert spec["allowedPattern"].startswith("^") and spec["allowedPattern"].endswith("$")
            assert set(spec) <= {"type", "description", "default", "allowedPattern"}, (name, pname)
            if "default" in spec:
                assert re.fullmatch(spec["allowedPattern"], spec["default"]), (name, pname)
        steps = doc["mainSteps"]
        assert isinstance(steps, list) and len(steps) == 1
        step = steps[0]
        assert step["action"] == "aws:runShellScript"
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", step["name"])
        assert step["precondition"] == {"StringEquals": ["platformType", "Linux"]}
        assert int(step["inputs"]["timeoutSeconds"]) > 0
        commands = step["inputs"]["runCommand"]
        assert isinstance(commands, list) and commands and all(isinstance(c, str) for c in commands)
        used = set()
        for command in commands:
            # The script, by absolute path, that exists in bin/.
            script = command.split()[0]
            assert script == "/opt/joinkeeper/bin/" + name, command
            assert os.access(os.path.join(BIN, os.path.basename(script)), os.X_OK)
            # Every placeholder is a declared parameter and stands alone inside single quotes.
            for pname in placeholders(command):
                assert pname in params, (name, pname)
                used.add(pname)
            stripped = re.sub(r"'\{\{ [A-Za-z0-9_]+ \}\}'", "", command)
            assert "{{" not in stripped and "}}" not in stripped, "placeholder outside single quotes: " + command
            assert not re.search(r"[$`;&|<>\\\"]", stripped), "shell syntax in runCommand: " + command
            assert "ssm:" not in command
        assert used == set(params), "declared but unused parameters in " + name


def test_parameter_patterns_accept_good_values_and_reject_shell_text():
    for name, doc in load_documents().items():
        for pname, spec in doc["parameters"].items():
            pattern = spec["allowedPattern"]
            for value in GOOD[pname]:
                assert re.fullmatch(pattern, value), (pname, value)
            for value in HOSTILE + BAD[pname]:
                # Whole-value match (how SSM applies allowedPattern), and no partial match either
                # for values with text after a newline.
                assert not re.fullmatch(pattern, value), (pname, value)
                if "\n" in value.rstrip("\n"):
                    assert not re.search(pattern, value), (pname, value)
            # No character a shell treats specially can ever pass.
            for ch in "'\"`$;&|<>(){}\\\n\r\t*?[]!#~ ":
                for good in GOOD[pname]:
                    middle = good[: len(good) // 2] + ch + good[len(good) // 2:]
                    for value in (good + ch, ch + good, middle):
                        if ch == " " and pname in ("InstanceIds", "PrivateDnsNames", "PrivateIps") and re.fullmatch(pattern, value):
                            continue  # the one separator these lists allow, between whole items
                        assert not re.fullmatch(pattern, value), (pname, repr(value))


def test_substituted_commands_split_into_exactly_the_expected_arguments():
    for name, doc in load_documents().items():
        command = doc["mainSteps"][0]["inputs"]["runCommand"][0]
        for pname in doc["parameters"]:
            for value in GOOD[pname]:
                values = {p: GOOD[p][0] for p in doc["parameters"]}
                values[pname] = value
                text = re.sub(r"\{\{ ([A-Za-z0-9_]+) \}\}", lambda m: values[m.group(1)], command)
                words = shlex.split(text)
                assert words[0] == "/opt/joinkeeper/bin/" + name
                assert value in words, (text, words)


def test_documents_are_accepted_by_ssm_create_document(jk):
    for path in sorted(glob.glob(os.path.join(DOCUMENTS, "*.json"))):
        out = jk.tool(os.path.join(VENV_BIN, "aws"), "ssm", "create-document", "--name",
                      "%s-%s" % (os.path.basename(path)[:-5], jk.cluster), "--document-type", "Command",
                      "--document-format", "JSON", "--content", "file://" + path, "--output", "json").stdout
        description = json.loads(out)["DocumentDescription"]
        assert description["Status"] == "Active" and description["SchemaVersion"] == "2.2"
