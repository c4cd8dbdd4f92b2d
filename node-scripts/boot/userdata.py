#!/usr/bin/env python3
"""The user data the cluster stack ships, taken from the synthesized CloudFormation templates.

Nothing here renders user data by hand: the text is the template's own `UserData` (an
`AWS::EC2::Instance` for each control plane, the worker group's `AWS::EC2::LaunchTemplate`), with
the CloudFormation intrinsics CDK put in it (`Fn::Base64`, `Fn::Join`, `Fn::Sub`, `Ref`,
`Fn::GetAtt`) resolved to the values a deploy would give them: the asset bucket of the account and
Region, the Region, the wait condition handle's presigned URL, the API load balancer's DNS name.
Any other reference is an error, so a new token in the user data is noticed.

Library (used by the boot tests and the demo):
    synth(outdir)                       synthesizes every variant (infra/scripts/synth-all.ts)
    Variant(synth_dir, name)            one variant's cluster template and node-scripts asset
    variant.nodes()                     [Node(role, index, logical_id, tags, az_index)]
    variant.user_data(node, values)     the node's user data text
    Values(account, region, ...)        what the intrinsics resolve to

Command line (for the demo and for people):
    python3 node-scripts/boot/userdata.py list [--synth-dir DIR]
    python3 node-scripts/boot/userdata.py extract --variant single-kubeadm --role worker \\
        --out /tmp/worker-user-data.sh [--index 0] [--synth-dir DIR] [--account 123456789012]
        [--region us-east-1] [--wait-handle-url URL] [--api-dns-name NAME]
Without --synth-dir it synthesizes into a temporary folder first (about 10 s; needs infra's npm
packages, installed with `npm ci` when missing).
"""
import argparse
import base64
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INFRA = os.path.join(REPO, "infra")
VARIANTS = ("single-kubeadm", "ha-kubeadm", "single-kurl", "ha-kurl", "arm64-options", "per-instance")


class UnknownIntrinsic(Exception):
    pass


@dataclasses.dataclass
class Values:
    """What a deploy gives the template's references."""
    account: str = "123456789012"
    region: str = "us-east-1"
    stack: str = "JoinkeeperCluster-demo"
    wait_handle_url: str = ""
    api_dns_name: str = ""
    # "<LogicalId>.<Attribute>" -> value, for references a deploy resolves (a KMS key's Arn...).
    attributes: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.wait_handle_url:
            # The shape of a WaitConditionHandle's Ref: a presigned S3 URL.
            self.wait_handle_url = (
                "https://cloudformation-waitcondition-%s.s3.amazonaws.com/arn%%3Aaws%%3Acloudformation%%3A%s"
                "%%3A%s%%3Astack/%s/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/ControlPlaneReadyHandle"
                "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261127T000000Z&X-Amz-Expires=86399"
                "&X-Amz-SignedHeaders=host&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%%2F20261127%%2F%s%%2Fs3"
                "%%2Faws4_request&X-Amz-Signature=%s"
                % (self.region, self.region, self.account, self.stack, self.region, "5" * 64))
        if not self.api_dns_name:
            self.api_dns_name = "%s-ApiServ-1a2b3c4d5e6f7a8b.elb.%s.amazonaws.com" % (self.stack[:12], self.region)

    @property
    def asset_bucket(self):
        return "cdk-hnb659fds-assets-%s-%s" % (self.account, self.region)


@dataclasses.dataclass
class Node:
    role: str            # control-plane | worker
    index: int           # control-plane index (0 initializes), 0 for the worker template
    logical_id: str
    tags: dict
    az_index: int


def resolve(value, template, values):
    """A CloudFormation value with intrinsics, resolved to a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, dict) or len(value) != 1:
        raise UnknownIntrinsic("not an intrinsic: %r" % (value,))
    (fn, arg), = value.items()
    if fn == "Fn::Base64":
        return resolve(arg, template, values)
    if fn == "Fn::Join":
        sep, parts = arg
        return sep.join(resolve(p, template, values) for p in parts)
    if fn == "Fn::Sub":
        if not isinstance(arg, str):
            raise UnknownIntrinsic("Fn::Sub with variables")
        pseudo = {"AWS::AccountId": values.account, "AWS::Region": values.region,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": values.stack}

        def sub(m):
            if m.group(1) not in pseudo:
                raise UnknownIntrinsic("Fn::Sub ${%s}" % m.group(1))
            return pseudo[m.group(1)]
        return re.sub(r"\$\{([^}]+)\}", sub, arg)
    if fn == "Ref":
        pseudo = {"AWS::Region": values.region, "AWS::AccountId": values.account, "AWS::Partition": "aws",
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": values.stack}
        if arg in pseudo:
            return pseudo[arg]
        resource = template["Resources"].get(arg, {})
        if resource.get("Type") == "AWS::CloudFormation::WaitConditionHandle":
            return values.wait_handle_url
        raise UnknownIntrinsic("Ref %s" % arg)
    if fn == "Fn::GetAtt":
        logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
        if "%s.%s" % (logical, attribute) in values.attributes:
            return values.attributes["%s.%s" % (logical, attribute)]
        resource = template["Resources"].get(logical, {})
        if resource.get("Type") == "AWS::ElasticLoadBalancingV2::LoadBalancer" and attribute == "DNSName":
            return values.api_dns_name
        if resource.get("Type") == "AWS::KMS::Key" and attribute == "Arn":
            return "arn:aws:kms:%s:%s:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" % (values.region, values.account)
        raise UnknownIntrinsic("Fn::GetAtt %s.%s" % (logical, attribute))
    raise UnknownIntrinsic(fn)


class Variant:
    """One synthesized variant: its cluster stack template and node-scripts asset."""

    def __init__(self, synth_dir, name):
        self.name = name
        self.dir = os.path.join(synth_dir, name)
        found = glob.glob(os.path.join(self.dir, "JoinkeeperCluster-*.template.json"))
        if len(found) != 1:
            raise FileNotFoundError("no cluster stack template in %s" % self.dir)
        self.template_path = found[0]
        self.stack = os.path.basename(self.template_path)[: -len(".template.json")]
        with open(self.template_path) as fh:
            self.template = json.load(fh)
        with open(os.path.join(self.dir, self.stack + ".assets.json")) as fh:
            assets = json.load(fh)
        self.asset_dir = self.asset_key = None
        for digest, asset in assets["files"].items():
            if asset["source"].get("packaging") == "zip" and asset.get("displayName") == "NodeScripts":
                self.asset_dir = os.path.join(self.dir, asset["source"]["path"])
                self.asset_key = next(iter(asset["destinations"].values()))["objectKey"]
        if not self.asset_dir:
            raise FileNotFoundError("no NodeScripts asset in %s" % self.dir)

    def resources(self, kind):
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == kind}

    def nodes(self):
        """Control planes in index order, then the worker group's launch template."""
        out = []
        for logical, res in self.resources("AWS::EC2::Instance").items():
            props = res["Properties"]
            tags = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
            if tags.get("joinkeeper:role") != "control-plane":
                continue
            m = re.search(r"-control-plane-(\d+)$", tags.get("Name", ""))
            az = props.get("AvailabilityZone", {})
            az_index = az.get("Fn::Select", [0])[0] if isinstance(az, dict) else 0
            out.append(Node("control-plane", int(m.group(1)) if m else 0, logical, tags, int(az_index)))
        out.sort(key=lambda n: n.index)
        for group in self.resources("AWS::AutoScaling::AutoScalingGroup").values():
            tags = {t["Key"]: t["Value"] for t in group["Properties"].get("Tags", [])}
            if tags.get("joinkeeper:role") == "worker":
                logical = group["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
                out.append(Node("worker", 0, logical, tags, 0))
        return out

    def node(self, role, index=0):
        for n in self.nodes():
            if n.role == role and n.index == index:
                return n
        raise KeyError("%s has no %s %d" % (self.name, role, index))

    def worker_group(self):
        (logical, group), = [(k, g) for k, g in self.resources("AWS::AutoScaling::AutoScalingGroup").items()
                             if any(t["Key"] == "joinkeeper:role" and t["Value"] == "worker"
                                    for t in g["Properties"].get("Tags", []))]
        return logical, group["Properties"]

    def user_data(self, node, values):
        res = self.template["Resources"][node.logical_id]
        props = res["Properties"]
        raw = props.get("UserData") if res["Type"] == "AWS::EC2::Instance" else \
            props.get("LaunchTemplateData", {}).get("UserData")
        if raw is None:
            raise KeyError("%s has no UserData" % node.logical_id)
        return resolve(raw, self.template, values)


def ensure_npm_packages():
    if not os.path.exists(os.path.join(INFRA, "node_modules", ".bin", "tsx")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=INFRA, check=True)


def synth(outdir):
    """Synthesizes every variant into outdir (infra/scripts/synth-all.ts); returns outdir."""
    ensure_npm_packages()
    proc = subprocess.run([os.path.join(INFRA, "node_modules", ".bin", "tsx"), "scripts/synth-all.ts", outdir],
                          cwd=INFRA, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError("synth failed:\n" + proc.stdout[-3000:])
    return outdir


def main(argv=None):
    parser = argparse.ArgumentParser(prog="userdata.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="variants and their nodes")
    p_list.add_argument("--synth-dir")
    p = sub.add_parser("extract", help="write one node's user data to a file")
    p.add_argument("--synth-dir")
    p.add_argument("--variant", required=True, choices=VARIANTS)
    p.add_argument("--role", required=True, choices=("control-plane", "worker"))
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--account", default="123456789012")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--wait-handle-url", default="")
    p.add_argument("--api-dns-name", default="")
    args = parser.parse_args(argv)
    tmp = None
    synth_dir = args.synth_dir
    if not synth_dir:
        tmp = tempfile.mkdtemp(prefix="joinkeeper-synth.")
        synth_dir = synth(tmp)
    try:
        if args.command == "list":
            for name in VARIANTS:
                v = Variant(synth_dir, name)
                print("%s: %s" % (name, ", ".join("%s %d" % (n.role, n.index) for n in v.nodes())))
            return 0
        v = Variant(synth_dir, args.variant)
        values = Values(args.account, args.region, v.stack, args.wait_handle_url, args.api_dns_name)
        text = v.user_data(v.node(args.role, args.index), values)
        with open(args.out, "w") as fh:
            fh.write(text)
        os.chmod(args.out, 0o700)
        print("%s: %s %d of %s, %d lines (asset s3://%s/%s from %s)"
              % (args.out, args.role, args.index, args.variant, text.count("\n"), values.asset_bucket,
                 v.asset_key, v.asset_dir))
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
