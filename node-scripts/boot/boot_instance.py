"""One boot of an instance in its sandbox (sandbox.sh, cloud-init.sh): what BootWorld (world.py)
does to start it, and what it returns."""
import dataclasses
import os
import re
import subprocess
import time

from boot_host import HERE, REPO, STANDINS, SYSTEM_PATH, VENV, _pdeathsig, hide_host_programs, system_python


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


class InstanceBoot:
    """BootWorld's part that boots one instance: its metadata, environment and sandbox."""

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
            # This instance's own role session (the recorder reads ec2:SourceInstanceARN from it).
            "AWS_SESSION_TOKEN": "jkemu-instance-role/" + instance_id,
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
