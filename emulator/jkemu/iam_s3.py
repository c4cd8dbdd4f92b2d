"""IAM actions and resources of S3 requests (the nodes' download of the node scripts asset, the
harnesses' upload of it). S3 is a REST protocol: the operation comes from the method, the path and
the query, not from a target header or an Action field. The IAM action is the one the Service
Authorization Reference lists for the operation (HeadObject is authorized as s3:GetObject);
the record keeps the operation's own name in its parameters."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import parse_qs

from .iam_context import Authorization, Request, everything, wildcard

# Subresources (query keys) that name another operation than the plain object/bucket call.
BUCKET_GETS = {
    "location": ("GetBucketLocation", "GetBucketLocation"),
    "versions": ("ListObjectVersions", "ListBucketVersions"),
}
LISTING_KEYS = ("prefix", "delimiter")
# Query keys of the plain calls themselves (paging, versions, parts, the SDKs' x-id).
PLAIN_QUERY = (
    "list-type",
    "continuation-token",
    "max-keys",
    "start-after",
    "encoding-type",
    "marker",
    "versionId",
    "partNumber",
    "x-id",
    "fetch-owner",
)
UNMODELLED = "Unmodelled"


def bucket_and_key(environ: dict[str, Any]) -> tuple[str, str]:
    """Path style (`/bucket/key`, what clients send to an IP address or localhost endpoint), or
    virtual-hosted style (`bucket.<host>/key`)."""
    path = environ.get("PATH_INFO") or "/"
    host = (environ.get("HTTP_HOST") or "").rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(host)
        path_style = True
    except ValueError:
        path_style = host in ("", "localhost") or host.startswith("s3.") or "." not in host
    if path_style:
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key
    return host.split(".", 1)[0], path.lstrip("/")


def operation(
    method: str, bucket: str, key: str, query: dict[str, list[str]], copy: bool
) -> tuple[str, str]:
    """(API operation, IAM action name) of one request; the action is UNMODELLED for the
    operations not told apart here (other subresources: ?acl, ?tagging, ?uploads, ...)."""
    subresources = [k for k in query if k not in LISTING_KEYS + PLAIN_QUERY]
    if not bucket:
        return ("ListBuckets", "ListAllMyBuckets") if method == "GET" else (method, UNMODELLED)
    if not key:
        if subresources:
            op = BUCKET_GETS.get(subresources[0]) if method == "GET" else None
            return op or (f"{method} ?{subresources[0]}", UNMODELLED)
        plain = {
            "GET": ("ListObjectsV2" if "list-type" in query else "ListObjects", "ListBucket"),
            "HEAD": ("HeadBucket", "ListBucket"),
            "PUT": ("CreateBucket", "CreateBucket"),
            "DELETE": ("DeleteBucket", "DeleteBucket"),
        }.get(method)
        return plain or (f"{method} bucket", UNMODELLED)
    if subresources:
        return (f"{method} ?{subresources[0]}", UNMODELLED)
    if method == "PUT" and copy:
        return ("CopyObject", "PutObject")
    plain = {
        "GET": ("GetObject", "GetObject"),
        "HEAD": ("HeadObject", "GetObject"),
        "PUT": ("PutObject", "PutObject"),
        "DELETE": ("DeleteObject", "DeleteObject"),
    }.get(method)
    return plain or (f"{method} object", UNMODELLED)


def s3_request(environ: dict[str, Any], account: str, region: str) -> Request:
    bucket, key = bucket_and_key(environ)
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    copy = bool(environ.get("HTTP_X_AMZ_COPY_SOURCE"))
    api, action = operation(environ.get("REQUEST_METHOD", "GET"), bucket, key, query, copy)
    params: dict[str, Any] = {"Operation": api, "Bucket": bucket}
    if key:
        params["Key"] = key
    for name in LISTING_KEYS:
        if name in query:
            params[name.capitalize()] = query[name][0]
    return Request("s3", action, params, account, region)


def s3(request: Request) -> Authorization:
    """Objects: arn:aws:s3:::bucket/key; bucket operations: arn:aws:s3:::bucket (ListBucket with
    its s3:prefix / s3:delimiter keys); ListAllMyBuckets: *."""
    params = request.params
    if request.operation in (UNMODELLED, "ListAllMyBuckets"):
        return wildcard(request, modelled=request.operation != UNMODELLED)
    bucket = f"arn:aws:s3:::{params['Bucket']}"
    arn = f"{bucket}/{params['Key']}" if "Key" in params else bucket
    keys = everything(request)
    if request.operation == "ListBucket":
        for name in LISTING_KEYS:
            if name.capitalize() in params:
                keys[f"s3:{name}"] = params[name.capitalize()]
    return Authorization([arn], {arn: keys})
