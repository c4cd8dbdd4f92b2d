#!/usr/bin/env python3
"""A boto3 peer of the token-refresher, for the cold-start benchmark (bench/cold_start.py).

A Python Lambda function as one would write it: boto3 imported and clients made at init, outside
the handler, and a plain Runtime API loop (GET .../invocation/next, POST .../response or
.../error, POST .../init/error). Its handler makes the refresher's AWS calls for a scheduled
run where every record is fresh (the no-op path the benchmark seeds):
  ec2:DescribeInstances (tag-key joinkeeper:cluster)   \\ discover the clusters
  autoscaling:DescribeTags (key joinkeeper:cluster)    /
  per cluster: ssm:GetParameter <prefix>/<c>/join-record-meta, then
               ssm:GetParameter <prefix>/<c>/join-record WithDecryption=false (version only)
  autoscaling:DescribeAutoScalingGroups (tag-key joinkeeper:cluster)   the lifecycle sweep
It never regenerates: a record that is not fresh is reported as `stale`. The benchmark prints the
calls both functions made, so a drift between the two shows.
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


def discover_clusters():
    names = set()
    pages = EC2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag-key", "Values": [CLUSTER_TAG]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                names |= {t["Value"] for t in instance.get("Tags", []) if t["Key"] == CLUSTER_TAG}
    for page in ASG.get_paginator("describe_tags").paginate(Filters=[{"Name": "key", "Values": [CLUSTER_TAG]}]):
        names |= {t["Value"] for t in page["Tags"]}
    return sorted(names)


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


def sweep():
    groups = []
    pages = ASG.get_paginator("describe_auto_scaling_groups").paginate(Filters=[{"Name": "tag-key", "Values": [CLUSTER_TAG]}])
    for page in pages:
        groups += [g["AutoScalingGroupName"] for g in page["AutoScalingGroups"]]
    return [{"group": g, "waiting": 0} for g in groups]


def handler(event):
    if event.get("detail-type") != "Scheduled Event":
        raise ValueError("expected a scheduled event")
    clusters = [refresh_cluster(c) for c in discover_clusters()]
    return {"refresh": {"clusters": clusters, "rejected_tags": []}, "sweep": sweep()}


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
