"""The cluster stack's own user data, booted end to end against the emulator (node-scripts/boot).

For every variant (single/HA x kubeadm/kURL, and the arm64 variant with a customer managed key,
another cluster name and parameter prefix), the user data is extracted from the synthesized
templates, the control planes boot at once in sandboxes, then a worker of the shipped launch
template boots when the worker group launches it. Each test prints the stand-in call counts.
"""
import json
import os
import re
import stat
import time
import pytest

from boot.conftest import BOOT, HOST_PATHS, boot_all, figure, host_snapshot, launch_worker, subsequence
from contract import check_record

import scan as boot_scan  # noqa: E402
import world as boot_world  # noqa: E402
from userdata import VARIANTS, Variant  # noqa: E402

ACCOUNTS = {name: "1000000001%02d" % i for i, name in enumerate(VARIANTS)}


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def step_of(argv):
    """The first words of a call, without the AWS CLI's global options."""
    words = list(argv)
    if words[0] == "aws":
        while len(words) > 2 and words[1].startswith("--cli-"):
            del words[1:3]
    return " ".join(words[:3])


def argv_of(world, instance_id, tool):
    return [argv for _, inst, argv in world.calls() if inst == instance_id and argv[0] == tool]


@pytest.fixture
def sampler(emulator):
    watcher = boot_world.ProcessSampler(emulator.proc.pid)
    watcher.start()
    yield watcher
    watcher.stop()


@pytest.mark.parametrize("variant_name", [v for v in VARIANTS if v != "per-instance"])
def test_variant_boots_end_to_end(variant_name, synth_dir, emulator, sampler):
    before = host_snapshot()
    variant = Variant(synth_dir, variant_name)
    region = "eu-west-1" if variant_name.startswith("arm64") else "us-east-1"
    world = boot_world.BootWorld(emulator, variant, ACCOUNTS[variant_name], region=region)
    ha = sum(1 for n in variant.nodes() if n.role == "control-plane") > 1
    kurl = "kurl" in variant_name
    source = "kurl" if kurl else "kubeadm"

    control_planes, results = boot_all(world)
    for r in results:
        assert r.exit_code == 0, "control plane %s failed:\n%s" % (r.instance_id, r.console[-3000:])
        # What ran is the template's own text, every CloudFormation reference resolved.
        node = next(n for n in variant.nodes() if n.role == "control-plane" and
                    control_planes[n.index] == r.instance_id)
        assert world.user_data[r.instance_id] == variant.user_data(node, world.values)
        assert "Fn::" not in world.user_data[r.instance_id] and "${Token" not in world.user_data[r.instance_id]

    # The wait condition: one SUCCESS per control plane, as CloudFormation's handle expects it.
    signals = world.signals()
    assert len(signals) == len(control_planes)
    bodies = sorted((json.loads(s["body"]) for s in signals), key=lambda b: b["UniqueId"])
    assert [b["UniqueId"] for b in bodies] == ["control-plane-%d" % i for i in range(len(control_planes))]
    assert all(b["Status"] == "SUCCESS" and set(b) == {"Status", "Reason", "UniqueId", "Data"} for b in bodies)
    assert all(s["url"] == world.values.wait_handle_url for s in signals)

    # The first control plane published a valid record, with its metadata beside it.
    prefix = re.search(r"^JK_PREFIX='([^']*)'$", world.user_data[control_planes[0]], re.M).group(1)
    record_param = world.parameter("%s/%s/join-record" % (prefix, world.cluster))
    assert record_param and record_param["Type"] == "SecureString"
    record = json.loads(record_param["Value"])
    check_record(record, world.cluster, source=source)
    cp0 = world.instance(control_planes[0])
    assert record["endpoint"] == ("%s:6443" % world.values.api_dns_name if ha else "%s:6443" % cp0["PrivateIpAddress"])
    meta = world.parameter("%s/%s/join-record-meta" % (prefix, world.cluster), decrypt=False)
    assert meta is not None, "no join-record-meta beside the record"
    meta = json.loads(meta["Value"])
    assert meta["token_id"] == record["token_id"] and meta["record_version"] == record_param["Version"]

    # Every control plane is a control-plane Node, named after its private DNS name, with a
    # providerID naming its instance; the installer's own token is gone, joinkeeper's is there.
    state = world.cluster_state()
    nodes = state["nodes"]
    for iid in control_planes:
        inst = world.instance(iid)
        node = nodes[inst["PrivateDnsName"]]
        assert node["role"] == "control-plane" and node["ready"] == "True"
        assert node["providerID"] == "aws:///%s/%s" % (inst["Placement"]["AvailabilityZone"], iid)
    assert len(nodes) == len(control_planes)
    assert record["token_id"] in state["tokens"]
    assert all(not t["description"].startswith("The default bootstrap token") for t in state["tokens"].values())
    installer_tokens = {argv[3] for argv in argv_of(world, control_planes[0], "kubeadm")
                        if argv[1:3] == ["token", "delete"]}
    assert len(installer_tokens) == 1 and not installer_tokens & set(state["tokens"])
    if ha:
        assert world.parameter("%s/%s/control-plane-join" % (prefix, world.cluster), decrypt=False) is None, \
            "the certificate key stays in Parameter Store after the peers joined"

    # Files: logs 0600 in a 0700 folder, installer output captured there, the node scripts.
    cp = results[0]
    assert mode(cp.path("/var/log/joinkeeper")) == 0o700
    for name in os.listdir(cp.path("/var/log/joinkeeper")):
        assert mode(cp.path("/var/log/joinkeeper/" + name)) == 0o600, name
    installer_log = "kurl-install.log" if kurl else "kubeadm-init.log"
    assert os.path.exists(cp.path("/var/log/joinkeeper/" + installer_log))
    assert "--- %s: exit 0" % installer_log[:-4] in cp.console
    assert mode(cp.path("/opt/joinkeeper/bin/joinkeeper-regenerate")) == 0o755
    assert cp.read("/etc/joinkeeper/joinkeeper.conf").startswith("JOINKEEPER_MODE=%s\n" % source)
    assert cp.read("/etc/default/kubelet").strip() == "KUBELET_EXTRA_ARGS=--provider-id=aws:///%s/%s" % (
        cp0["Placement"]["AvailabilityZone"], control_planes[0])
    if not kurl:
        assert mode(cp.path("/etc/apt/keyrings/kubernetes-apt-keyring.gpg")) == 0o644
        init = argv_of(world, control_planes[0], "kubeadm")
        init = [a for a in init if a[1] == "init" and a[2] != "phase"]
        assert len(init) == 1 and "--skip-token-print" in init[0]
        assert ("--skip-certificate-key-print" in init[0]) == ha
    else:
        assert not os.path.exists(cp.path("/opt/replicated/kubeadm.conf"))
        flags = argv_of(world, control_planes[0], "kurl-install")[0][1:]
        assert flags == (["ha", "load-balancer-address=%s:6443" % world.values.api_dns_name] if ha else [])

    # The order of the first control plane's boot, as its stand-ins saw it.
    steps = [step_of(argv) for _, inst, argv in world.calls() if inst == control_planes[0]]
    expected = ["apt-get update -q", "apt-get install -y", "snap install aws-cli", "hostnamectl set-hostname",
                "aws s3 cp"]
    if kurl:
        expected += ["curl -fsSL https://kurl.sh/latest", "kurl-install"]
    else:
        expected += ["modprobe overlay", "sysctl --system", "swapoff -a", "apt-get install -y", "containerd config default",
                     "systemctl restart containerd", "gpg --dearmor --yes", "apt-get install -y", "apt-mark hold kubelet",
                     "systemctl enable --now", "kubeadm init --config", "kubectl apply -f"]
    expected += ["aws ssm put-parameter", "kubeadm token delete", "curl -fsS -X"]
    assert subsequence(expected, steps), "\n".join(steps)

    # A worker of the shipped launch template joins.
    group, worker, wresult = launch_worker(world)
    assert wresult.exit_code == 0, wresult.console[-3000:]
    assert world.user_data[worker] == variant.user_data(variant.node("worker"), world.values)
    winst = world.instance(worker)
    wnode = world.cluster_state()["nodes"][winst["PrivateDnsName"]]
    assert wnode["ready"] == "True" and wnode["role"] == "worker"
    assert wnode["providerID"] == "aws:///%s/%s" % (winst["Placement"]["AvailabilityZone"], worker)
    assert "joined cluster=%s node=%s token_id=%s" % (world.cluster, winst["PrivateDnsName"], record["token_id"]) \
        in wresult.console
    joins = [a for a in argv_of(world, worker, "kubeadm") if a[1] == "join"]
    assert len(joins) == 1 and joins[0][2] == "--config"
    # Bound for service (IMDS target lifecycle state InService), with its boot unit enabled for
    # a later start (leaving a warm pool), which the emulator would run as a boot unit.
    assert "join deferred" not in wresult.console
    unit = wresult.read("/etc/systemd/system/joinkeeper-join.service")
    assert "ExecStart=/opt/joinkeeper/bin/joinkeeper-join --watch --cluster %s --prefix %s --deadline-seconds " \
        % (world.cluster, prefix) in unit
    assert [a[1:] for a in argv_of(world, worker, "systemctl") if a[1] in ("daemon-reload", "enable")][-2:] == \
        [["daemon-reload"], ["enable", "joinkeeper-join.service"]]
    assert os.access(wresult.path("/boot-units/joinkeeper-join"), os.X_OK)
    # The launch hook holds it: the functions (not run here) complete it once the Node is Ready.
    assert world.group_instances(group)[0]["LifecycleState"] == "Pending:Wait"

    # Regenerate on the first control plane through Run Command, in its mode (kubeadm or kURL),
    # as the token refresher does.
    inv = world.run_command(control_planes[0], "joinkeeper-regenerate",
                            {"ClusterName": world.cluster, "ParameterPrefix": prefix, "TokenTtlSeconds": "7200"})
    assert inv["Status"] == "Success", inv["StandardErrorContent"]
    assert inv["StandardOutputContent"].splitlines()[-1].startswith("published cluster=%s token_id=" % world.cluster)
    assert json.loads(world.parameter(record_param["Name"])["Value"])["source"] == source

    # Least privilege as booted: the nodes' only S3 calls read the node scripts object (HeadObject
    # and GetObject, both IAM's s3:GetObject on its ARN: the one object their roles may read), and
    # the SecureStrings the control planes wrote use the cluster stack's own key.
    calls = emulator.aws_calls(world.account)
    asset = "arn:aws:s3:::%s/%s" % (world.values.asset_bucket, variant.asset_key)
    s3 = {(c["principal"], c["action"], c["parameters"]["Operation"], tuple(c["resources"]))
          for c in calls if c["service"] == "s3" and c["principal"] in ("control-plane", "worker")}
    assert s3 == {(role, "s3:GetObject", op, (asset,)) for role in ("control-plane", "worker")
                  for op in ("HeadObject", "GetObject")}, s3
    encrypts = [c for c in calls if c["action"] == "kms:Encrypt" and c["principal"] == "control-plane"]
    assert encrypts and all(c["context"][c["resources"][0]].get("aws:ResourceTag/joinkeeper:cluster") == world.cluster
                            for c in encrypts), encrypts[:1]

    # The secrets (every token and certificate key minted) appear nowhere: no file any instance
    # wrote, no console, no Run Command output, no command line.
    report = boot_scan.scan(world, control_planes + [worker], sampler=sampler,
                            outputs=[("regenerate stdout", inv["StandardOutputContent"]),
                                     ("regenerate stderr", inv["StandardErrorContent"])])
    figure("secret scan %s: %s" % (variant_name, report.summary()))
    assert report.secrets >= (6 if ha else 4) and report.files > 50 and report.processes > 100
    assert report.hits == [], report.hits
    # kURL's own join_token task is the one place a token is on a command line (kURL's code).
    assert (report.kurl_task_lines > 0) == kurl

    # This machine was not touched.
    assert host_snapshot() == before

    figure(boot_world.format_counts("%s stand-in calls, control planes (%d)" % (variant_name, len(control_planes)),
                                    world.call_counts(set(control_planes))))
    figure(boot_world.format_counts("%s stand-in calls, control plane 0" % variant_name,
                                    world.call_counts({control_planes[0]})))
    figure(boot_world.format_counts("%s stand-in calls, worker" % variant_name, world.call_counts({worker})))
    figure("%s boot times: control planes %s s, worker %.1f s" % (
        variant_name, "/".join("%.1f" % r.seconds for r in results), wresult.seconds))


def test_failed_package_install_signals_failure_and_joins_nothing(synth_dir, emulator):
    variant = Variant(synth_dir, "single-kubeadm")

    # A control plane whose kubelet package cannot be installed.
    world = boot_world.BootWorld(emulator, variant, "100000000201", fail=["apt-get:kubelet"])
    (cp0,), (result,) = boot_all(world)
    failing_cp_counts = world.call_counts({cp0})
    assert result.exit_code != 0
    (signal,) = world.signals()
    body = json.loads(signal["body"])
    assert body["Status"] == "FAILURE" and body["UniqueId"] == "control-plane-0"
    assert "/var/log/joinkeeper/user-data.log" in body["Reason"]
    assert world.instance(cp0)["PrivateDnsName"] in body["Reason"]
    log = result.read("/var/log/joinkeeper/user-data.log")
    assert "E: Unable to locate package kubelet" in log and "giving up after 6 tries" in log
    assert world.parameter("/joinkeeper/%s/join-record" % world.cluster) is None
    assert argv_of(world, cp0, "kubeadm") == [], "kubeadm ran although it was never installed"
    assert not os.path.exists(os.path.join(world.kube_state(), "state.json")) or not world.cluster_state()["nodes"]

    # A worker whose kubeadm package cannot be installed, next to a healthy control plane.
    world = boot_world.BootWorld(emulator, variant, "100000000202")
    (cp0,), (result,) = boot_all(world)
    assert result.exit_code == 0, result.console[-2000:]
    group, worker, wresult = launch_worker(world, fail=["apt-get:kubeadm"])
    assert wresult.exit_code != 0
    assert "E: Unable to locate package kubeadm" in wresult.read("/var/log/joinkeeper/user-data.log")
    assert argv_of(world, worker, "kubeadm") == [], "no join was attempted"
    assert not os.path.exists(wresult.path("/var/log/joinkeeper/joinkeeper-join.log"))
    assert [n["role"] for n in world.cluster_state()["nodes"].values()] == ["control-plane"]
    assert world.group_instances(group)[0]["LifecycleState"] == "Pending:Wait"  # ABANDONed at the deadline
    figure(boot_world.format_counts("failing control plane (apt-get install kubelet fails), stand-in calls",
                                    failing_cp_counts))
    figure(boot_world.format_counts("failing worker (apt-get install kubeadm fails), stand-in calls",
                                    world.call_counts({worker})))


def test_boot_stand_ins_are_shellcheck_clean_and_never_use_the_network():
    import shutil
    import subprocess
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed"
    scripts = [os.path.join(BOOT, "sandbox.sh"), os.path.join(BOOT, "cloud-init.sh")]
    standins = os.path.join(os.path.dirname(BOOT), "standins")
    for folder in ("boot", "boot/pkg", "kurl"):
        for name in sorted(os.listdir(os.path.join(standins, folder))):
            path = os.path.join(standins, folder, name)
            if os.path.isfile(path) and open(path).read(40).startswith(("#!/usr/bin/env bash", "# shellcheck")):
                scripts.append(path)
    assert len(scripts) >= 14
    proc = subprocess.run([shellcheck, "-x", "-S", "style"] + scripts, cwd=standins, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
    # No stand-in calls a networking program or the real curl.
    for path in scripts + [os.path.join(standins, "boot", "curl")]:
        text = open(path).read()
        assert not re.search(r"\b(wget|nc|ncat|socat|ssh|/usr/bin/curl|urllib|http\.client|socket\.)\b", text), path
    assert set(HOST_PATHS)


def test_a_control_plane_that_finds_the_key_gone_gets_a_fresh_one_from_a_peer(synth_dir, emulator):
    # HA kubeadm: the first two control planes boot and join; the joined peer deletes the
    # certificate key. The third boots only then (a slow instance, or a control plane added on a
    # later day): it runs joinkeeper-upload-certs on a healthy peer through Run Command, the
    # account stack's document, and joins as a control plane with the fresh key.
    variant = Variant(synth_dir, "ha-kubeadm")
    world = boot_world.BootWorld(emulator, variant, "100000000401")
    world.upload_asset()
    nodes = [n for n in variant.nodes() if n.role == "control-plane"]
    assert len(nodes) == 3
    first = [world.launch_control_plane(n) for n in nodes[:2]]
    for r in [world.boot(i) for i in first]:
        assert r.wait(600).exit_code == 0, r.console[-2000:]
    prefix = re.search(r"^JK_PREFIX='([^']*)'$", world.user_data[first[0]], re.M).group(1)
    key_name = "%s/%s/control-plane-join" % (prefix, world.cluster)
    assert world.parameter(key_name, decrypt=False) is None, "the joined peer left the first key behind"

    late = world.launch_control_plane(nodes[2])
    result = world.boot(late).wait(600)
    assert result.exit_code == 0, result.console[-3000:]
    assert "for a fresh certificate key (joinkeeper-upload-certs)" in result.console
    sent = [c for c in emulator.aws_calls(world.account)
            if c.get("action") == "ssm:SendCommand" and c.get("principal") == "control-plane"]
    assert sent, "no Run Command was sent by the late control plane"
    inst = world.instance(late)
    node = world.cluster_state()["nodes"][inst["PrivateDnsName"]]
    assert node["role"] == "control-plane" and node["ready"] == "True"
    assert world.parameter(key_name, decrypt=False) is None, "the fresh key stays in Parameter Store"


def test_rogue_node_is_listed_and_cordoned_through_run_command(synth_dir, emulator):
    # A booted single control plane and worker; then a Node that no instance stands behind
    # (registered with a token by someone else), listed and cordoned through the documents.
    world = boot_world.BootWorld(emulator, Variant(synth_dir, "single-kubeadm"), "100000000301")
    (cp0,), (result,) = boot_all(world)
    assert result.exit_code == 0, result.console[-2000:]
    _, worker, wresult = launch_worker(world)
    assert wresult.exit_code == 0, wresult.console[-2000:]
    import subprocess
    subprocess.run([boot_world.system_python(), os.path.join(os.path.dirname(BOOT), "standins", "kubectl"),
                    "x-standin", "add-node", "rogue-1", "--provider-id", "aws:///us-east-1a/i-0fffffffffffffff1",
                    "--age-seconds", "1800"],
                   env=dict(os.environ, JOINKEEPER_KUBE_STATE=world.kube_state()), check=True, stdout=subprocess.DEVNULL)

    inv = world.run_command(cp0, "joinkeeper-nodes", {})
    assert inv["Status"] == "Success", inv["StandardErrorContent"]
    lines = {line.split()[0]: line.split() for line in inv["StandardOutputContent"].splitlines()}
    cp_inst, w_inst = world.instance(cp0), world.instance(worker)
    assert set(lines) == {cp_inst["PrivateDnsName"], w_inst["PrivateDnsName"], "rogue-1"}
    # name, providerID, created, state, cordoned, InternalIP, protected labels
    assert lines["rogue-1"][1:] == ["aws:///us-east-1a/i-0fffffffffffffff1", lines["rogue-1"][2], "Ready", "no", "-", "-"]
    assert lines[w_inst["PrivateDnsName"]][1] == "aws:///%s/%s" % (w_inst["Placement"]["AvailabilityZone"], worker)

    inv = world.run_command(cp0, "joinkeeper-cordon", {"NodeName": "rogue-1"})
    assert inv["Status"] == "Success", inv["StandardErrorContent"]
    assert inv["StandardOutputContent"].splitlines()[-1] == "cordon node=rogue-1 result=cordoned"
    inv = world.run_command(cp0, "joinkeeper-nodes", {"StartAfter": "-"})
    rogue = [line for line in inv["StandardOutputContent"].splitlines() if line.startswith("rogue-1 ")]
    assert rogue and rogue[0].split()[3:5] == ["Ready", "yes"]

    # node-status, given the private DNS names and asked about an instance whose Node is gone:
    # no EC2 call from the control plane.
    def ec2_calls():
        return [c for c in emulator.aws_calls(world.account)
                if c.get("principal") == "control-plane" and c.get("service") == "ec2"]
    before = len(ec2_calls())
    pairs = "%s=%s i-0aaaaaaaaaaaaaaa1=ip-10-9-9-9.ec2.internal" % (worker, w_inst["PrivateDnsName"])
    inv = world.run_command(cp0, "joinkeeper-node-status",
                            {"InstanceIds": worker + " i-0aaaaaaaaaaaaaaa1", "PrivateDnsNames": pairs})
    assert inv["Status"] == "Success", inv["StandardErrorContent"]
    assert inv["StandardOutputContent"] == "%s %s Ready\ni-0aaaaaaaaaaaaaaa1 - Absent\n" % (
        worker, w_inst["PrivateDnsName"])
    assert len(ec2_calls()) == before

    inv = world.run_command(cp0, "joinkeeper-cordon", {"NodeName": "rogue-1", "Delete": "true"})
    assert inv["StandardOutputContent"].splitlines()[-1] == "cordon node=rogue-1 result=deleted"
    assert "rogue-1" not in world.cluster_state()["nodes"]


def test_per_instance_worker_joins_with_its_own_token_and_never_reads_the_shared_record(synth_dir, emulator):
    # The joinMode=per-instance stack: its worker waits for its own record, which node-status
    # (sent here as the functions' pass sends it) mints; its certificate request waits for the
    # next pass's approval; then the wait ends and the token and record are revoked.
    variant = Variant(synth_dir, "per-instance")
    world = boot_world.BootWorld(emulator, variant, "100000000501")
    (cp0,), (result,) = boot_all(world)
    assert result.exit_code == 0, result.console[-2000:]
    prefix = re.search(r"^JK_PREFIX='([^']*)'$", world.user_data[cp0], re.M).group(1)
    assert "JK_JOIN_MODE='per-instance'" in world.user_data[cp0]
    group = world.create_worker_group(desired=1)
    deadline = time.time() + 30
    while not world.group_instances(group) and time.time() < deadline:
        time.sleep(0.2)
    worker = world.group_instances(group)[0]["InstanceId"]
    run = world.boot(worker)
    dns = world.instance(worker)["PrivateDnsName"]
    params = {"InstanceIds": worker, "PrivateDnsNames": "%s=%s" % (worker, dns), "Output": "facts",
              "TokenCluster": world.cluster, "TokenPrefix": prefix, "TokenTtl": "900",
              "JoinTokens": "%s=%s" % (worker, dns)}
    outputs = []
    deadline = time.time() + 400
    while run.proc.poll() is None and time.time() < deadline:
        inv = world.run_command(cp0, "joinkeeper-node-status", params)
        assert inv["Status"] == "Success", inv["StandardErrorContent"]
        outputs.append(inv["StandardOutputContent"])
        time.sleep(1)
    wresult = run.wait(60)
    assert wresult.exit_code == 0, wresult.console[-3000:]
    text = "\n".join(outputs)
    minted = re.findall(r"^token %s ([a-z0-9]{6}) minted$" % worker, text, re.M)
    assert len(minted) == 1, text
    assert re.search(r"^csr %s csr-[a-z0-9]+ approved %s$" % (worker, re.escape(dns)), text, re.M), text
    assert "joined cluster=%s node=%s token_id=%s" % (world.cluster, dns, minted[0]) in wresult.console
    state = world.cluster_state()
    assert state["nodes"][dns]["ready"] == "True"
    # Its AWS calls: its own record only (with its own role session), never the shared one.
    calls = [c for c in emulator.aws_calls(world.account) if c.get("principal") == "worker"]
    reads = [r for c in calls if c.get("action") == "ssm:GetParameter" for r in c["resources"]]
    assert reads and all(r.endswith("/join/%s" % worker) for r in reads), reads
    own = [c for c in calls if c.get("action") == "ssm:GetParameter"][-1]
    assert own["context"][own["resources"][0]]["ec2:SourceInstanceARN"].endswith(":instance/%s" % worker)
    # The wait ended: revoked with the next pass's command.
    inv = world.run_command(cp0, "joinkeeper-node-status", dict(params, JoinTokens="-", RevokeTokens=worker))
    assert "token %s %s revoked" % (worker, minted[0]) in inv["StandardOutputContent"]
    assert minted[0] not in world.cluster_state()["tokens"]
    assert world.parameter("%s/%s/join/%s" % (prefix, world.cluster, worker), decrypt=False) is None
