"""Boot the cluster stack's own user data against the local emulator, one sandbox per instance.

    emulator = Emulator(workdir)                       # emulator/joinkeeper_emulator.py, a free port
    world = BootWorld(emulator, Variant(synth_dir, "ha-kubeadm"), account="100000000001")
    world.upload_asset()                               # the synthesized node-scripts asset, to S3
    ids = [world.launch_control_plane(n) for n in world.variant.nodes() if n.role == "control-plane"]
    runs = [world.boot(i) for i in ids]                # all at once, as CloudFormation starts them
    results = [r.wait() for r in runs]
    group = world.create_worker_group(desired=1)       # the template's group, hooks and tags
    worker = world.group_instances(group)[0]
    world.boot(worker).wait()

What is real here: the user data text (extracted from the template, userdata.py), the node
scripts (the synthesized asset, downloaded by the user data with `aws s3 cp` from the emulator's
S3), the AWS CLI and every AWS call it makes (the emulator: S3, SSM, EC2, Auto Scaling, Run
Command), bash and coreutils, jq, unzip. What stands in (node-scripts/standins/boot, recording
every call): apt-get, apt-mark, snap, systemctl, modprobe, sysctl, swapoff, hostnamectl, gpg,
curl (the instance metadata service, pkgs.k8s.io, the kURL installer, the wait condition), sleep
(back-offs pass JOINKEEPER_BOOT_TIME_SCALE times as fast), and what the packages install:
containerd, kubelet, kubeadm and kubectl (the stand-in cluster of node-scripts/standins).

The sandbox (sandbox.sh): new mount/UTS/IPC/PID namespaces (plus a user namespace when not run as
root) and an overlay of / whose upper layer is the instance's emulator node folder
(<state>/nodes/<instance-id>/): /etc, /var/log, /opt, /usr/local ... written by the boot land
there. Instances launched here carry the tag emulator:user-data=skip, so the emulator itself never
runs their user data on this machine; this harness does, in the sandbox.
"""
import base64
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from userdata import Values  # noqa: E402
NODE_SCRIPTS = os.path.dirname(HERE)
REPO = os.path.dirname(NODE_SCRIPTS)
STANDINS = os.path.join(NODE_SCRIPTS, "standins")
VENV = os.path.join(REPO, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # cloud-init's PATH
BOOT_TOOLS = ("apt-get", "apt-mark", "snap", "systemctl", "modprobe", "sysctl", "swapoff", "hostnamectl",
              "gpg", "curl", "kubeadm", "kubectl", "kubelet", "containerd", "aws", "kurl-install", "kurl-join")


def system_python():
    for path in ("/usr/bin/python3", "/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("python3", path=SYSTEM_PATH) or "python3"


# Programs a fresh Ubuntu instance does not have before its packages are installed: when this
# machine has them (a kubectl of some SDK, an aws CLI), the sandbox hides them with overlay
# whiteouts, so a boot can only use what its own steps installed.
PACKAGE_PROGRAMS = ("kubeadm", "kubectl", "kubelet", "containerd", "ctr", "crictl", "aws")
PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def hide_host_programs(upper):
    hidden = []
    for folder in PROGRAM_DIRS:
        if os.path.islink(folder) or not os.path.isdir(folder):
            continue  # /bin -> usr/bin: hidden through the real folder
        for name in PACKAGE_PROGRAMS:
            host, mine = os.path.join(folder, name), os.path.join(upper, folder.lstrip("/"), name)
            if os.path.lexists(host) and not os.path.lexists(mine):
                os.makedirs(os.path.dirname(mine), exist_ok=True)
                try:
                    os.mknod(mine, 0o600 | stat.S_IFCHR, os.makedev(0, 0))  # an overlayfs whiteout
                    hidden.append(host)
                except PermissionError:
                    pass  # without CAP_MKNOD (user namespace): the host's program stays visible
    return hidden


def _pdeathsig():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the harness
    except (OSError, AttributeError):
        pass


class Emulator:
    """emulator/joinkeeper_emulator.py on a free loopback port, state in <workdir>/state, every
    AWS request it serves recorded in <workdir>/aws-calls.jsonl (caller, action, resources)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)
        self.log = open(os.path.join(workdir, "emulator.log"), "ab")
        self.calls_file = os.path.join(workdir, "aws-calls.jsonl")
        self.proc = subprocess.Popen(
            [VENV_PYTHON, os.path.join(REPO, "emulator", "joinkeeper_emulator.py"), "--host", "127.0.0.1",
             "--port", "0", "--state-dir", self.state, "--scripts-dir", NODE_SCRIPTS,
             "--record-calls", self.calls_file],
            stdout=subprocess.PIPE, stderr=self.log, text=True, preexec_fn=_pdeathsig)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError("the emulator did not start (see %s/emulator.log)" % workdir)
        self.url = line.split()[1]

    def control(self, path, account):
        import urllib.request
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen("%s/_joinkeeper/%s%saccount=%s" % (self.url, path, sep, account)) as resp:
            return json.loads(resp.read())

    def aws_calls(self, account=None):
        """The AWS requests served so far (one dict each), optionally of one account."""
        if not os.path.exists(self.calls_file):
            return []
        with open(self.calls_file) as fh:
            calls = [json.loads(line) for line in fh if line.strip()]
        return [c for c in calls if account is None or c.get("account") == account]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class ProcessSampler(threading.Thread):
    """Samples, every `interval` seconds, the command line of every process inside a boot sandbox
    (another PID namespace than ours) and of every process the emulator started (Run Command
    scripts and their children). Complements the stand-ins' own records with what they do not
    see (bash, jq, python3, the AWS CLI's interpreter, kURL's scripts)."""

    def __init__(self, emulator_pid, interval=0.05):
        super().__init__(daemon=True)
        self.emulator_pid = emulator_pid
        self.interval = interval
        self.own_ns = os.readlink("/proc/self/ns/pid")
        self.seen = {}  # pid -> argv (first sighting)
        self.argvs = set()
        self.samples = 0
        self._halt = threading.Event()

    def snapshot(self):
        parents, ns = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    stat = fh.read()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                ns[int(entry)] = os.readlink("/proc/%s/ns/pid" % entry)
            except (OSError, IndexError, ValueError):
                continue
        watched = set()
        for pid in parents:
            chain, p = [], pid
            while p > 1 and p not in watched and len(chain) < 64:
                chain.append(p)
                if p == self.emulator_pid or ns.get(p, self.own_ns) != self.own_ns:
                    watched.update(chain)
                    break
                p = parents.get(p, 0)
        for pid in watched:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    raw = fh.read()
            except OSError:
                continue
            if raw:
                argv = tuple(a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0"))
                self.argvs.add(argv)
        self.samples += 1

    def run(self):
        while not self._halt.is_set():
            self.snapshot()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


@dataclasses.dataclass
class BootResult:
    instance_id: str
    role: str
    exit_code: int
    upper: str          # the instance's root overlay (its emulator node folder)
    seconds: float

    def path(self, absolute):
        return os.path.join(self.upper, absolute.lstrip("/"))

    def read(self, absolute):
        with open(self.path(absolute), errors="replace") as fh:
            return fh.read()

    @property
    def console(self):
        """What the instance printed (cloud-init copies it to the EC2 console)."""
        return self.read("/var/log/cloud-init-output.log")


class BootRun:
    def __init__(self, world, instance_id, role, proc, started):
        self.world, self.instance_id, self.role, self.proc, self.started = world, instance_id, role, proc, started

    def wait(self, timeout=600):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.world.boot_logs[self.instance_id].close()
        return BootResult(self.instance_id, self.role, code, self.world.node_dir(self.instance_id),
                          time.time() - self.started)


class BootWorld:
    """One variant of the cluster stack in one emulator account."""

    def __init__(self, emulator, variant, account, region="us-east-1", workdir=None, fail=(), time_scale=0.05):
        self._open(emulator, variant, account, region, workdir, fail, time_scale)
        self.cluster = next(n.tags["joinkeeper:cluster"] for n in variant.nodes())
        # The emulator keeps one stand-in cluster per cluster name (<state>/clusters/<name>, where
        # its Run Commands look too), whatever the account: a new world starts it afresh, so
        # worlds of the same cluster name run one after the other.
        shutil.rmtree(self.kube_state(), ignore_errors=True)
        self.kms = self.session.client("kms", endpoint_url=emulator.url, config=self.config)
        # The stack's own KMS keys (a customer managed key for the cluster's parameters), made
        # in the emulator so the SecureStrings the nodes write can use them.
        for logical in variant.resources("AWS::KMS::Key"):
            key = self.kms.create_key(Description="%s %s" % (variant.stack, logical))["KeyMetadata"]
            self.values.attributes["%s.Arn" % logical] = key["Arn"]
        # The account stack is deployed before any cluster stack: its SSM documents exist when the
        # instances boot. Control planes run them on each other (an HA peer that finds the first
        # certificate key gone, deleted by a faster peer, asks a healthy one to upload a fresh key).
        for name in sorted(os.listdir(os.path.join(NODE_SCRIPTS, "documents"))):
            if name.endswith(".json"):
                self.ensure_document(name[: -len(".json")])

    @classmethod
    def existing(cls, emulator, variant, account, region, cluster, workdir, time_scale=0.05):
        """A world someone else set up (its stand-in cluster and keys kept as they are): to boot
        the instances it launches, as the emulator's user-data runner does."""
        self = cls.__new__(cls)
        self._open(emulator, variant, account, region, workdir, (), time_scale)
        self.cluster = cluster
        return self

    def _open(self, emulator, variant, account, region, workdir, fail, time_scale):
        self.emulator, self.variant, self.account, self.region = emulator, variant, account, region
        self.values = Values(account, region, variant.stack if variant else "JoinkeeperCluster-demo")
        self.fail = list(fail)
        self.time_scale = time_scale
        self.workdir = workdir or os.path.join(emulator.workdir, "worlds", account)
        self.shared = os.path.join(self.workdir, "shared")
        for sub in ("imds", "records", "mnt", "ovl-work", "boot-logs"):
            os.makedirs(os.path.join(self.shared if sub in ("imds", "records") else self.workdir, sub), exist_ok=True)
        self.record_file = os.path.join(self.shared, "records", "calls.log")
        self.signal_file = os.path.join(self.shared, "records", "signals.jsonl")
        open(self.record_file, "a").close()
        open(self.signal_file, "a").close()
        self.session = session = boto3.Session(aws_access_key_id=account, aws_secret_access_key="testing",
                                               region_name=region)
        self.config = config = Config(retries={"max_attempts": 2}, user_agent_appid="test-harness")
        self.ec2 = session.client("ec2", endpoint_url=emulator.url, config=config)
        self.s3 = session.client("s3", endpoint_url=emulator.url, config=config)
        self.ssm = session.client("ssm", endpoint_url=emulator.url, config=config)
        self.asg = session.client("autoscaling", endpoint_url=emulator.url, config=config)
        self.user_data = {}
        self.roles = {}
        self.boot_logs = {}

    # --- the world's AWS side -----------------------------------------------------------------
    def upload_asset(self):
        """The node-scripts asset as CDK publishes it: the synthesized folder, zipped, in the
        account's asset bucket."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for folder, _, files in os.walk(self.variant.asset_dir):
                for name in sorted(files):
                    full = os.path.join(folder, name)
                    info = zipfile.ZipInfo(os.path.relpath(full, self.variant.asset_dir))
                    info.external_attr = (os.stat(full).st_mode & 0o777) << 16
                    with open(full, "rb") as fh:
                        zf.writestr(info, fh.read())
        kwargs = {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        try:
            self.s3.create_bucket(Bucket=self.values.asset_bucket, **kwargs)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        self.s3.put_object(Bucket=self.values.asset_bucket, Key=self.variant.asset_key, Body=buf.getvalue())

    def zone(self, index):
        return "%s%s" % (self.region, "abc"[index % 3])

    def launch_control_plane(self, node, extra_tags=None):
        """RunInstances as the template's AWS::EC2::Instance: its tags and its user data."""
        text = self.variant.user_data(node, self.values)
        tags = dict(node.tags, **{"emulator:user-data": "skip"}, **(extra_tags or {}))
        res = self.ec2.run_instances(
            ImageId="ami-0123456789abcdef0", InstanceType="t3.medium", MinCount=1, MaxCount=1,
            Placement={"AvailabilityZone": self.zone(node.az_index)},
            UserData=text,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
        instance_id = res["Instances"][0]["InstanceId"]
        self.roles[instance_id] = "control-plane"
        return instance_id

    def create_worker_group(self, desired=1, extra_tags=None):
        """The template's worker launch template and group (hooks, tags), created in the emulator."""
        node = self.variant.node("worker")
        text = self.variant.user_data(node, self.values)
        _, props = self.variant.worker_group()
        name = "%s-workers" % self.variant.stack
        self.ec2.create_launch_template(
            LaunchTemplateName=name + "-template",
            LaunchTemplateData={"ImageId": "ami-0123456789abcdef0", "InstanceType": "t3.medium",
                                "UserData": base64.b64encode(text.encode()).decode()})
        tags = [{"Key": t["Key"], "Value": t["Value"], "PropagateAtLaunch": t.get("PropagateAtLaunch", True),
                 "ResourceId": name, "ResourceType": "auto-scaling-group"} for t in props.get("Tags", [])]
        for key, value in dict({"emulator:user-data": "skip"}, **(extra_tags or {})).items():
            tags.append({"Key": key, "Value": value, "PropagateAtLaunch": True, "ResourceId": name,
                         "ResourceType": "auto-scaling-group"})
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=int(props.get("MaxSize", 5)), DesiredCapacity=desired,
            LaunchTemplate={"LaunchTemplateName": name + "-template", "Version": "$Latest"},
            AvailabilityZones=[self.zone(0), self.zone(1)],
            LifecycleHookSpecificationList=props.get("LifecycleHookSpecificationList", []),
            Tags=tags)
        return name

    def group_instances(self, group):
        groups = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        out = []
        for inst in groups[0]["Instances"] if groups else []:
            self.roles.setdefault(inst["InstanceId"], "worker")
            out.append(inst)
        return out

    def instance(self, instance_id):
        res = self.ec2.describe_instances(InstanceIds=[instance_id])
        return res["Reservations"][0]["Instances"][0]

    def instance_user_data(self, instance_id):
        """The user data EC2 holds for the instance (what cloud-init would fetch)."""
        attr = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        raw = attr.get("UserData", {}).get("Value", "")
        text = base64.b64decode(raw).decode()
        try:  # launch templates hold the base64 text; moto may encode it once more
            again = base64.b64decode(text, validate=True).decode()
            if again.startswith("#!"):
                text = again
        except (ValueError, UnicodeDecodeError):
            pass
        return text

    # --- one boot -------------------------------------------------------------------------------
    def node_dir(self, instance_id):
        return os.path.join(self.emulator.state, "nodes", instance_id)

    def kube_state(self):
        return os.path.join(self.emulator.state, "clusters", self.cluster)

    def write_imds(self, inst, role):
        base = os.path.join(self.shared, "imds", inst["InstanceId"])
        meta = {
            "instance-id": inst["InstanceId"],
            "local-hostname": inst["PrivateDnsName"],
            "hostname": inst["PrivateDnsName"],
            "local-ipv4": inst["PrivateIpAddress"],
            "placement/availability-zone": inst["Placement"]["AvailabilityZone"],
            "placement/region": self.region,
            "instance-type": inst.get("InstanceType", "t3.medium"),
            "ami-id": inst.get("ImageId", ""),
        }
        if role == "worker":
            target = os.path.join(self.node_dir(inst["InstanceId"]), "imds", "autoscaling", "target-lifecycle-state")
            meta["autoscaling/target-lifecycle-state"] = (
                open(target).read().strip() if os.path.exists(target) else "InService")
        for rel, value in meta.items():
            path = os.path.join(base, "meta-data", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(value)
        return base

    def boot(self, instance_id, fail=None, text=None):
        """Starts the instance's first boot in its sandbox (its user data, or `text`); returns a
        BootRun (call .wait())."""
        inst = self.instance(instance_id)
        role = self.roles.get(instance_id) or {t["Key"]: t["Value"] for t in inst.get("Tags", [])}.get(
            "joinkeeper:role", "worker")
        text = self.instance_user_data(instance_id) if text is None else text
        self.user_data[instance_id] = text
        upper = self.node_dir(instance_id)
        scripts = os.path.join(upper, "var", "lib", "cloud", "instance", "scripts")
        os.makedirs(scripts, exist_ok=True)
        with open(os.path.join(scripts, "part-001"), "w") as fh:
            fh.write(text)
        os.chmod(os.path.join(scripts, "part-001"), 0o700)
        os.makedirs(os.path.join(upper, "var", "log"), exist_ok=True)
        self.hidden = hide_host_programs(upper)
        mnt = os.path.join(self.workdir, "mnt", instance_id)
        work = os.path.join(self.workdir, "ovl-work", instance_id)
        os.makedirs(mnt, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        os.makedirs(self.kube_state(), exist_ok=True)
        imds = self.write_imds(inst, role)
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        env = {
            "PATH": os.path.join(STANDINS, "boot") + ":" + SYSTEM_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            # The emulator's AWS APIs, in this world's account; the instance role's principal.
            "AWS_ENDPOINT_URL": self.emulator.url,
            "AWS_ACCESS_KEY_ID": self.account,
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_SDK_UA_APP_ID": role,
            # The stand-in cluster (kubeadm/kubectl) and where its node files go (the sandbox's /).
            "JOINKEEPER_KUBE_STATE": self.kube_state() + "/",
            "JOINKEEPER_STANDIN_ROOT": "/",
            # The boot stand-ins.
            "JOINKEEPER_BOOT_INSTANCE": instance_id,
            "JOINKEEPER_BOOT_RECORD": self.record_file,
            "JOINKEEPER_BOOT_SIGNALS": self.signal_file,
            "JOINKEEPER_BOOT_IMDS_DIR": imds,
            "JOINKEEPER_BOOT_WAIT_HANDLE": self.values.wait_handle_url,
            "JOINKEEPER_BOOT_STANDINS": STANDINS,
            "JOINKEEPER_BOOT_PYTHON": system_python(),
            "JOINKEEPER_BOOT_AWS": os.path.join(VENV, "bin", "aws"),
            "JOINKEEPER_BOOT_FAIL": " ".join(self.fail + list(fail or [])),
            "JOINKEEPER_BOOT_TIME_SCALE": str(self.time_scale),
            # The sandbox itself.
            "JK_SANDBOX_ROOT": mnt,
            "JK_SANDBOX_UPPER": upper,
            "JK_SANDBOX_WORK": work,
            "JK_SANDBOX_BINDS": ":".join([self.kube_state(), self.shared]),
            "JK_SANDBOX_RO_BINDS": REPO,
            "JK_SANDBOX_HOSTNAME": "localhost",
            "JK_SANDBOX_INIT": os.path.join(HERE, "cloud-init.sh"),
        }
        for key, value in tags.items():
            if key.startswith("emulator:"):
                env["JOINKEEPER_EMULATOR_" + re.sub(r"[^A-Za-z0-9_]", "_", key[len("emulator:"):].upper())] = value
        argv = ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--propagation", "private"]
        if os.geteuid() != 0:
            argv[1:1] = ["--user", "--map-root-user"]
        log = open(os.path.join(self.workdir, "boot-logs", instance_id + ".log"), "ab")
        self.boot_logs[instance_id] = log
        proc = subprocess.Popen(argv + ["bash", os.path.join(HERE, "sandbox.sh")], env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        return BootRun(self, instance_id, role, proc, time.time())

    # --- what happened ------------------------------------------------------------------------
    def calls(self):
        """Every stand-in call: (time, instance id, argv list), in order."""
        out = []
        with open(self.record_file) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) != 3:
                    continue
                argv = base64.b64decode(parts[2]).split(b"\0")[:-1]
                out.append((float(parts[0]), parts[1], [a.decode(errors="replace") for a in argv]))
        out.sort(key=lambda c: c[0])
        return out

    def signals(self):
        with open(self.signal_file) as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def cluster_state(self):
        path = os.path.join(self.kube_state(), "state.json")
        with open(path) as fh:
            return json.load(fh)

    def parameter(self, name, decrypt=True):
        try:
            return self.ssm.get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]
        except self.ssm.exceptions.ParameterNotFound:
            return None

    def parameter_names(self):
        names = []
        for page in self.ssm.get_paginator("describe_parameters").paginate():
            names += [p["Name"] for p in page["Parameters"]]
        return names

    def parameter_history(self, name):
        try:
            pages = self.ssm.get_paginator("get_parameter_history").paginate(Name=name, WithDecryption=True)
            return [p for page in pages for p in page["Parameters"]]
        except self.ssm.exceptions.ParameterNotFound:
            return []

    def ensure_document(self, document):
        """Registers one of node-scripts/documents under its default name, as the account stack
        does, unless it exists."""
        try:
            self.ssm.describe_document(Name=document)
        except self.ssm.exceptions.InvalidDocument:
            with open(os.path.join(NODE_SCRIPTS, "documents", document + ".json")) as fh:
                self.ssm.create_document(Name=document, Content=fh.read(), DocumentType="Command",
                                         DocumentFormat="JSON")

    def run_command(self, instance_id, document, parameters, timeout=300):
        """SendCommand with one of node-scripts/documents, waits for the end; returns
        GetCommandInvocation's answer."""
        self.ensure_document(document)
        command = self.ssm.send_command(InstanceIds=[instance_id], DocumentName=document,
                                        Parameters={k: [v] for k, v in parameters.items()})["Command"]
        deadline = time.time() + timeout
        while True:
            time.sleep(0.3)
            try:
                inv = self.ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
            except self.ssm.exceptions.InvocationDoesNotExist:
                continue
            if inv["Status"] not in ("Pending", "InProgress", "Delayed") or time.time() > deadline:
                return inv

    def call_counts(self, instance_ids=None):
        counts = {}
        for _, instance, argv in self.calls():
            if instance_ids is None or instance in instance_ids:
                counts[argv[0]] = counts.get(argv[0], 0) + 1
        return counts


def format_counts(title, counts):
    order = [t for t in BOOT_TOOLS if t in counts] + sorted(t for t in counts if t not in BOOT_TOOLS)
    return "%s: %s (total %d)" % (title, ", ".join("%s %d" % (t, counts[t]) for t in order), sum(counts.values()))


def print_counts(title, counts):
    sys.stdout.write(format_counts(title, counts) + "\n")


def run_user_data(argv=None):
    """The emulator's user-data runner (`--user-data-runner "python3 world.py run-user-data"`):
    boots the launched instance's user data (the file the emulator saved, last argument) in its
    sandbox, with the environment the emulator gives a script on that instance; prints the
    instance's console and exits with the user data's exit status. Boot files of every instance
    (records, metadata, overlay mounts) go to <state>/boot/."""
    import argparse
    import types
    parser = argparse.ArgumentParser(prog="world.py run-user-data")
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("user_data")
    args = parser.parse_args(argv)
    env = os.environ
    state = env["JOINKEEPER_STATE"]
    emulator = types.SimpleNamespace(url=env["AWS_ENDPOINT_URL"], state=state, workdir=state)
    account = env["AWS_ACCESS_KEY_ID"] if env["AWS_ACCESS_KEY_ID"].isdigit() else "123456789012"
    cluster = os.path.basename(env["JOINKEEPER_KUBE_STATE"].rstrip("/"))
    world = BootWorld.existing(emulator, None, account, env["AWS_REGION"], cluster,
                               os.path.join(state, "boot"), time_scale=args.time_scale)
    with open(args.user_data) as fh:
        text = fh.read()
    # The wait condition handle the control plane signals is the one its user data names.
    handle = re.search(r'^JK_WAIT_HANDLE="([^"]*)"$', text, re.M)
    world.values.wait_handle_url = handle.group(1) if handle else ""
    instance_id = env["JOINKEEPER_INSTANCE_ID"]
    if env.get("AWS_SDK_UA_APP_ID"):
        world.roles[instance_id] = env["AWS_SDK_UA_APP_ID"]
    result = world.boot(instance_id, text=text).wait()
    sys.stdout.write(result.console if os.path.exists(result.path("/var/log/cloud-init-output.log")) else "")
    return result.exit_code


if __name__ == "__main__":
    if sys.argv[1:2] != ["run-user-data"]:
        sys.exit("usage: world.py run-user-data [--time-scale X] USER_DATA_FILE")
    sys.exit(run_user_data(sys.argv[2:]))
