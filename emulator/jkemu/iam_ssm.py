"""IAM resources and condition keys of SSM and KMS requests, and the KMS calls SSM makes on the
caller's behalf for SecureString parameters (Decrypt on a read with decryption, Encrypt or
GenerateDataKey on a write), which IAM authorizes against the caller too."""

from __future__ import annotations

from typing import Any

from moto.ec2.models import ec2_backends
from moto.kms.models import kms_backends
from moto.ssm.models import ssm_backends

from .iam_context import Authorization, Request, everything, listed, request_tags, tag_keys
from .iam_context import wildcard

DEFAULT_SSM_KEY = "alias/aws/ssm"
SSM_WILDCARD = {
    "GetCommandInvocation",
    "ListCommands",
    "ListCommandInvocations",
    "CancelCommand",
    "DescribeInstanceInformation",
    "DescribeParameters",
    "ListDocuments",
}
ONE_PARAMETER = {
    "GetParameter",
    "PutParameter",
    "DeleteParameter",
    "GetParameterHistory",
    "LabelParameterVersion",
    "UnlabelParameterVersion",
}
DOCUMENT_ACTIONS = {
    "CreateDocument",
    "UpdateDocument",
    "DeleteDocument",
    "DescribeDocument",
    "GetDocument",
    "UpdateDocumentDefaultVersion",
    "ListDocumentVersions",
}
DECRYPTING = {"GetParameter", "GetParameters", "GetParametersByPath", "GetParameterHistory"}
KMS_WITH_KEY = {"Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey", "ReEncrypt"}


def parameter_arn(request: Request, name: str) -> str:
    """arn:aws:ssm:R:A:parameter/<name without its leading slash>, without a `:version` or
    `:label` selector."""
    if name.startswith("arn:"):
        base, _, rest = name.partition(":parameter/")
        return f"{base}:parameter/{rest.split(':')[0]}"
    return (
        f"arn:aws:ssm:{request.region}:{request.account}:parameter/{name.split(':')[0].lstrip('/')}"
    )


def ssm_tag_keys(tags: dict[str, str]) -> dict[str, str]:
    return tag_keys(tags, "aws:ResourceTag", "ssm:resourceTag")


def find_parameter(request: Request, name: str) -> Any:
    try:
        return ssm_backends[request.account][request.region].get_parameter(name)
    except Exception:  # noqa: BLE001 - a bad selector: the call fails, the context stays empty
        return None


def parameter_tags(request: Request, name: str) -> dict[str, str]:
    parameter = find_parameter(request, name)
    if parameter is None:
        return {}
    backend = ssm_backends[request.account][request.region]
    return dict(backend._resource_tags.get("Parameter", {}).get(parameter.name, {}))


def parameters(request: Request, names: list[str], extra: dict[str, Any]) -> Authorization:
    arns = [parameter_arn(request, n) for n in names]
    context = {
        arn: {**everything(request), **ssm_tag_keys(parameter_tags(request, n)), **extra}
        for arn, n in zip(arns, names)
    }
    return Authorization(arns, context)


def document_arn(request: Request, name: str) -> str:
    owner = "" if name.startswith(("AWS-", "Amazon")) else request.account
    return f"arn:aws:ssm:{request.region}:{owner}:document/{name}"


def document_tags(request: Request, name: str) -> dict[str, str]:
    backend = ssm_backends[request.account][request.region]
    return dict(backend._resource_tags.get("Document", {}).get(name, {}))


def instance_tags(request: Request, instance_id: str) -> dict[str, str]:
    return dict(ec2_backends[request.account][request.region].tags.get(instance_id, {}))


def send_command(request: Request) -> Authorization:
    """The document and every instance named (Targets: any instance of the account)."""
    name = str(request.params.get("DocumentName", ""))
    doc = document_arn(request, name)
    context = {doc: {**everything(request), **ssm_tag_keys(document_tags(request, name))}}
    ids = listed(request.params, "InstanceIds")
    for instance_id in ids:
        arn = f"arn:aws:ec2:{request.region}:{request.account}:instance/{instance_id}"
        context[arn] = {**everything(request), **ssm_tag_keys(instance_tags(request, instance_id))}
    if not ids:
        context[f"arn:aws:ec2:{request.region}:{request.account}:instance/*"] = everything(request)
    return Authorization(list(context), context)


def kms_key(request: Request, key_id: str) -> tuple[str, dict[str, Any]]:
    """The key's ARN (aliases resolved, AWS managed keys such as aws/ssm included) and its
    condition keys."""
    backend = kms_backends[request.account][request.region]
    try:
        key = backend.keys.get(backend.any_id_to_key_id(key_id))
    except Exception:  # noqa: BLE001 - unknown alias or key: keep the name as given
        key = None
    if key is None:
        arn = (
            key_id
            if key_id.startswith("arn:")
            else f"arn:aws:kms:{request.region}:{request.account}:{key_id if key_id.startswith('alias/') else 'key/' + key_id}"
        )
        return arn, {}
    tags = {t["TagKey"]: t["TagValue"] for t in backend.list_resource_tags(key.id).get("Tags", [])}
    keys: dict[str, Any] = tag_keys(tags, "aws:ResourceTag")
    if key.aliases:
        keys["kms:ResourceAliases"] = sorted(key.aliases)
    return key.arn, keys


def through_ssm(request: Request, action: str, key_id: str, name: str) -> dict[str, Any]:
    """A KMS call SSM makes for one SecureString parameter, with SSM's encryption context."""
    arn, keys = kms_key(request, key_id)
    param_arn = parameter_arn(request, name)
    return {
        "action": action,
        "resources": [arn],
        "context": {
            arn: {
                **everything(request),
                **keys,
                "kms:EncryptionContext:PARAMETER_ARN": param_arn,
                "kms:EncryptionContextKeys": ["PARAMETER_ARN"],
                "kms:ViaService": f"ssm.{request.region}.amazonaws.com",
                "kms:CallerAccount": request.account,
            }
        },
        "parameters": {"KeyId": key_id, "EncryptionContext": {"PARAMETER_ARN": param_arn}},
    }


def put_parameter(request: Request) -> Authorization:
    params = request.params
    name = str(params.get("Name", ""))
    extra = {"ssm:Overwrite": str(bool(params.get("Overwrite"))).lower(), **request_tags(params)}
    auth = parameters(request, [name], extra)
    existing = find_parameter(request, name)
    kind = params.get("Type") or getattr(existing, "parameter_type", None)
    if kind == "SecureString":
        key = params.get("KeyId") or getattr(existing, "keyid", None) or DEFAULT_SSM_KEY
        tier = params.get("Tier") or getattr(existing, "tier", None) or "Standard"
        advanced = tier == "Advanced" or len(str(params.get("Value", ""))) > 4096
        action = "kms:GenerateDataKey" if advanced else "kms:Encrypt"
        auth.follow_ups.append(through_ssm(request, action, str(key), name))
    return auth


def ssm(request: Request) -> Authorization:
    op, params = request.operation, request.params
    if op in SSM_WILDCARD:
        return wildcard(request)
    if op == "SendCommand":
        return send_command(request)
    if op == "PutParameter":
        return put_parameter(request)
    if op in ONE_PARAMETER:
        return parameters(request, [str(params.get("Name", ""))], {})
    if op in ("GetParameters", "DeleteParameters"):
        return parameters(request, listed(params, "Names"), {})
    if op == "GetParametersByPath":
        recursive = {"ssm:Recursive": str(bool(params.get("Recursive"))).lower()}
        return parameters(request, [str(params.get("Path", ""))], recursive)
    if op in ("AddTagsToResource", "RemoveTagsFromResource", "ListTagsForResource"):
        rid = str(params.get("ResourceId", ""))
        if params.get("ResourceType") == "Parameter":
            return parameters(request, [rid], request_tags(params))
        if params.get("ResourceType") == "Document":
            arn = document_arn(request, rid)
            tags = ssm_tag_keys(document_tags(request, rid))
            return Authorization([arn], {arn: {**everything(request), **tags}})
    if op in DOCUMENT_ACTIONS:
        name = str(params.get("Name", ""))
        arn = document_arn(request, name)
        tags = ssm_tag_keys(document_tags(request, name))
        return Authorization([arn], {arn: {**everything(request), **tags, **request_tags(params)}})
    return wildcard(request, modelled=False)


def decrypted_reads(request: Request, response: dict[str, Any]) -> list[dict[str, Any]]:
    """After a successful read with decryption: one kms:Decrypt per SecureString returned."""
    if request.operation not in DECRYPTING or not request.params.get("WithDecryption"):
        return []
    returned = response.get("Parameters") or (
        [response["Parameter"]] if "Parameter" in response else []
    )
    calls = []
    for item in returned:
        if item.get("Type") != "SecureString":
            continue
        name = str(item.get("Name", ""))
        key = item.get("KeyId") or getattr(find_parameter(request, name), "keyid", None)
        calls.append(through_ssm(request, "kms:Decrypt", str(key or DEFAULT_SSM_KEY), name))
    return calls


def kms(request: Request) -> Authorization:
    key_id = request.params.get("KeyId")
    if request.operation in KMS_WITH_KEY and key_id:
        arn, keys = kms_key(request, str(key_id))
        return Authorization([arn], {arn: {**everything(request), **keys}})
    return wildcard(request, modelled=request.operation.startswith(("List", "Describe")))
