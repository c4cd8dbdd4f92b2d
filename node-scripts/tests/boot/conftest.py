"""Fixtures of the boot tests: one synthesis of every variant and one emulator for the session,
and helpers that boot a world's control planes and a worker of its group."""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
BOOT = os.path.join(os.path.dirname(TESTS), "boot")
sys.path.insert(0, BOOT)
sys.path.insert(0, TESTS)

import userdata  # noqa: E402
import world as boot_world  # noqa: E402

# Paths a boot writes on an instance: none of them may appear or change on this machine.
HOST_PATHS = ("/etc/joinkeeper", "/opt/joinkeeper", "/var/log/joinkeeper", "/etc/default/kubelet",
              "/etc/kubernetes", "/etc/apt/sources.list.d/kubernetes.list", "/etc/modules-load.d/k8s.conf",
              "/etc/sysctl.d/99-kubernetes.conf", "/etc/containerd", "/root/.kube", "/snap/bin/aws",
              "/usr/local/bin/aws", "/var/lib/kurl", "/opt/replicated", "/var/lib/cloud/instance/scripts",
              "/etc/hostname")


# Figures the boot tests print (stand-in calls per variant and role, secret scans): repeated in
# the terminal summary, so a quiet run (`pytest -q`, as scripts/test.sh runs it) shows them too.
FIGURES = []


def figure(line):
    FIGURES.append(line.strip("\n"))
    print(line)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("joinkeeper boot figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def host_snapshot():
    out = {}
    for path in HOST_PATHS:
        try:
            st = os.lstat(path)
            out[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            out[path] = None
    out["hostname"] = os.uname().nodename
    return out


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    return userdata.synth(str(tmp_path_factory.mktemp("synth")))


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    emu = boot_world.Emulator(str(tmp_path_factory.mktemp("boot-emulator")))
    yield emu
    emu.stop()


def boot_all(world, fail=None, timeout=600):
    """Uploads the asset, launches every control plane of the variant and boots them at once
    (as CloudFormation starts them); returns (instance ids by index, results in index order)."""
    world.upload_asset()
    nodes = [n for n in world.variant.nodes() if n.role == "control-plane"]
    ids = [world.launch_control_plane(n) for n in nodes]
    runs = [world.boot(i, fail=fail) for i in ids]
    return ids, [r.wait(timeout) for r in runs]


def launch_worker(world, fail=None, timeout=600):
    """Creates the template's worker group (one instance), boots the instance it launched."""
    group = world.create_worker_group(desired=1)
    deadline = time.time() + 30
    while True:
        instances = world.group_instances(group)
        if instances or time.time() > deadline:
            break
        time.sleep(0.2)
    assert instances, "the worker group launched no instance"
    worker = instances[0]["InstanceId"]
    return group, worker, world.boot(worker, fail=fail).wait(timeout)


def subsequence(expected, steps):
    """True when every expected prefix appears, in order, among the steps."""
    i = 0
    for step in steps:
        if i < len(expected) and step.startswith(expected[i]):
            i += 1
    return i == len(expected)
