"""IAM actions and resources of SQS requests (the lifecycle queue: EventBridge's deliveries, and
Lambda's event source mapping polling it with the function's execution role). The batch
operations are authorized as their single actions (DeleteMessageBatch as sqs:DeleteMessage,
as the Service Authorization Reference lists them); the resource is the queue's ARN, from the
QueueUrl's account and name (or QueueName for the calls that take one)."""

from __future__ import annotations

from urllib.parse import urlparse

from .iam_context import Authorization, Request, everything, wildcard

# Operations authorized as another action.
AS_ACTION = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
# Operations without a resource type.
UNSCOPED = {"ListQueues"}


def queue_arn(request: Request) -> str | None:
    """arn:aws:sqs:<region>:<account>:<name> of the queue the request names."""
    url = request.params.get("QueueUrl")
    if isinstance(url, str) and url:
        parts = [p for p in urlparse(url).path.split("/") if p]
        if len(parts) >= 2:
            return f"arn:aws:sqs:{request.region}:{parts[-2]}:{parts[-1]}"
        return None
    name = request.params.get("QueueName")
    if isinstance(name, str) and name:
        return f"arn:aws:sqs:{request.region}:{request.account}:{name}"
    return None


def sqs_request(request: Request) -> Request:
    """The request as IAM authorizes it: a batch operation becomes its single action, the
    operation's own name kept in the parameters (`Operation`)."""
    action = AS_ACTION.get(request.operation)
    if action is None:
        return request
    params = {**request.params, "Operation": request.operation}
    return Request(request.service, action, params, request.account, request.region)


def sqs(request: Request) -> Authorization:
    if request.operation in UNSCOPED:
        return wildcard(request)
    arn = queue_arn(request)
    if arn is None:
        return wildcard(request, modelled=False)
    return Authorization([arn], {arn: everything(request)})
