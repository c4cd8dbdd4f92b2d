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
import io
import json
import os
import re
import shutil
import sys
import time
import zipfile

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from userdata import Values  # noqa: E402
# The harness's other parts; its callers (the boot tests, the demo) use them through this module.
from boot_host import NODE_SCRIPTS, Emulator, ProcessSampler, format_counts, print_counts, system_python  # noqa: E402,F401
from boot_instance import BootResult, BootRun, InstanceBoot  # noqa: E402,F401


class BootWorld(InstanceBoot):
    """One variant of the cluster stack in one emulator account."""

    def __init__(self, emulator, variant, account, region="us-east-1", workdir=None, fail=(), time_scale=0.05):
        self._open(emulator, variant, account, region, workdir, fail, time_scale)
        self.cluster = next(n.tags["joinkeeper:cluster"] for n in variant.nodes())
        # The emulator keeps one stand-in cluster per cluster name (<state>/clusters/<name>, where
        # its Run Commands look too), whatever the account: a new world starts it afresh, so
        # worlds of the same cluster name run one after the other.
        shutil.rmtree(self.kube_state(), ignore_errors=True)
        self.create_keys()
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
        self.kms = session.client("kms", endpoint_url=emulator.url, config=config)
        self.iam = session.client("iam", endpoint_url=emulator.url, config=config)
        self.user_data = {}
        self.roles = {}
        self.boot_logs = {}

    # --- the world's AWS side -----------------------------------------------------------------
    def create_keys(self):
        """The stack's own KMS keys (the cluster's key, unless clusterKmsKey=false), made in the
        emulator with the template's tags (joinkeeper:cluster, as CloudFormation tags them), so
        the SecureStrings the nodes write use them and the IAM check knows them by that tag."""
        for logical, res in self.variant.resources("AWS::KMS::Key").items():
            tags = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in res.get("Properties", {}).get("Tags", [])]
            key = self.kms.create_key(Description="%s %s" % (self.variant.stack, logical), Tags=tags)["KeyMetadata"]
            self.values.attributes["%s.Arn" % logical] = key["Arn"]

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

    def control_plane_profile(self):
        """The template's control-plane instance profile (joinkeeper-control-plane-<cluster>), created
        once: the functions send commands only to instances that carry it."""
        name = "joinkeeper-control-plane-%s" % self.cluster
        try:
            self.iam.create_instance_profile(InstanceProfileName=name)
        except self.iam.exceptions.EntityAlreadyExistsException:
            pass
        return name

    def launch_control_plane(self, node, extra_tags=None):
        """RunInstances as the template's AWS::EC2::Instance: its tags and its user data."""
        text = self.variant.user_data(node, self.values)
        tags = dict(node.tags, **{"emulator:user-data": "skip"}, **(extra_tags or {}))
        profile = self.control_plane_profile()
        res = self.ec2.run_instances(
            IamInstanceProfile={"Name": profile},
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
