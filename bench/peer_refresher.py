#!/usr/bin/env python3
"""A boto3 peer of the token-refresher, for the cold-start benchmark (bench/cold_start.py).

A Python Lambda function as one would write it: boto3 imported and clients made at init, outside
the handler, and a plain Runtime API loop (GET .../invocation/next, POST .../response or
.../error, POST .../init/error). Its handler makes the refresher's AWS calls for a scheduled run where every record is fresh and
no lifecycle action waits (the no-op path the benchmark seeds), in the refresher's order:
  autoscaling:DescribeAutoScalingGroups (tag-key joinkeeper:cluster): the tagged groups, for
               discovery and the worker groups to reconcile
  ec2:DescribeInstances (tag-key joinkeeper:cluster): the clusters, and their running control planes
  per cluster: ssm:GetParameter <prefix>/<c>/join-record-meta, then
               ssm:GetParameter <prefix>/<c>/join-record WithDecryption=false (its version only)
  per cluster, the rogue-Node check: ssm:DescribeInstanceInformation (which running control
               planes are online); none is online in the benchmark, so the Node listing (Run
               Command) is skipped, as the refresher skips it
  per cluster: ssm:GetParametersByPath <prefix>/<c>/leases (leftover leases to clean up)
It never regenerates nor reconciles: a record that is not fresh is reported as `stale`, a group
with waiting instances as `waiting`. The benchmark prints the calls both functions made, so a
drift between the two shows.
"""
import json
import os
import sys
import time
import urllib.request
from datetime import datetime, timezone

import boto3

CLUSTER_TAG = "joinkeeper:cluster"
API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
PREFIX = os.environ.get("JOINKEEPER_PARAMETER_PREFIX", "/joinkeeper")
MARGIN = int(os.environ.get("JOINKEEPER_REFRESH_MARGIN_SECONDS", "3600"))


def post(path, body):
    req = urllib.request.Request(f"{API}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


try:
    session = boto3.session.Session()
    SSM = session.client("ssm")
    EC2 = session.client("ec2")
    ASG = session.client("autoscaling")
except Exception as err:  # reported as Lambda reports an init failure
    post("/init/error", {"errorMessage": str(err), "errorType": type(err).__name__})
    sys.exit(1)


def parse_time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def tagged_groups():
    pages = ASG.get_paginator("describe_auto_scaling_groups").paginate(Filters=[{"Name": "tag-key", "Values": [CLUSTER_TAG]}])
    return [g for page in pages for g in page["AutoScalingGroups"]]


def discover_clusters(groups):
    """The cluster names, and each cluster's running control planes."""
    names, control_planes = set(), {}
    pages = EC2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag-key", "Values": [CLUSTER_TAG]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                names.add(tags[CLUSTER_TAG])
                if tags.get("joinkeeper:role") == "control-plane" and instance["State"]["Name"] == "running":
                    control_planes.setdefault(tags[CLUSTER_TAG], []).append(instance["InstanceId"])
    for g in groups:
        names |= {t["Value"] for t in g.get("Tags", []) if t["Key"] == CLUSTER_TAG}
    return sorted(names), control_planes


def refresh_cluster(cluster):
    started = time.monotonic()
    report = {"cluster": cluster}
    try:
        meta = json.loads(SSM.get_parameter(Name=f"{PREFIX}/{cluster}/join-record-meta")["Parameter"]["Value"])
        version = SSM.get_parameter(Name=f"{PREFIX}/{cluster}/join-record", WithDecryption=False)["Parameter"]["Version"]
        remaining = (parse_time(meta["expires_at"]) - datetime.now(timezone.utc)).total_seconds()
        fresh = meta["record_version"] == version and remaining > MARGIN
        report.update(outcome="fresh" if fresh else "stale", token_id=meta["token_id"],
                      expires_at=meta["expires_at"], remaining_seconds=int(remaining))
    except Exception as err:
        report.update(outcome="failed", error=str(err))
    report["duration_ms"] = int((time.monotonic() - started) * 1000)
    print(json.dumps({"level": "INFO", "message": "cluster refreshed", **report}), flush=True)
    return report


def worker_groups(groups):
    found = []
    for g in groups:
        tags = {t["Key"]: t["Value"] for t in g.get("Tags", [])}
        if tags.get("joinkeeper:role") == "worker":
            waiting = [i["InstanceId"] for i in g.get("Instances", []) if i["LifecycleState"].endswith(":Wait")]
            found.append({"group": g["AutoScalingGroupName"], "waiting": len(waiting)})
    return found


def online_control_planes(running):
    if not running:
        return []
    info = SSM.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": running[:50]}])
    online = {i["InstanceId"] for i in info["InstanceInformationList"] if i.get("PingStatus") == "Online"}
    return sorted(i for i in running if i in online)


def leftover_leases(cluster):
    names = []
    for page in SSM.get_paginator("get_parameters_by_path").paginate(
            Path=f"{PREFIX}/{cluster}/leases", Recursive=True, WithDecryption=False):
        names += [p["Name"] for p in page["Parameters"]]
    return names


def handler(event):
    if event.get("detail-type") != "Scheduled Event":
        raise ValueError("expected a scheduled event")
    groups = tagged_groups()
    names, control_planes = discover_clusters(groups)
    clusters = [refresh_cluster(c) for c in names]
    reconciled = worker_groups(groups)
    listed = {c["cluster"]: bool(online_control_planes(control_planes.get(c["cluster"], []))) for c in clusters}
    leases = {c["cluster"]: len(leftover_leases(c["cluster"])) for c in clusters}
    return {"refresh": {"clusters": clusters, "rejected_tags": []}, "reconcile": reconciled,
            "nodes_listed": listed, "leases": leases}


def main():
    while True:
        with urllib.request.urlopen(f"{API}/invocation/next", timeout=None) as resp:
            request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(resp.read())
        try:
            result = handler(event)
        except Exception as err:
            post(f"/invocation/{request_id}/error", {"errorMessage": str(err), "errorType": type(err).__name__})
            continue
        post(f"/invocation/{request_id}/response", result)


if __name__ == "__main__":
    main()
