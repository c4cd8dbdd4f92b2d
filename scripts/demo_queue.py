"""The demo's stand-in for what AWS does between a lifecycle event and a function, as the account
stack deploys it: EventBridge's rule puts each event into the lifecycle queue (the message body is
the event), and Lambda's SQS event source mapping, one per lifecycle function, polls the queue,
gathers a batch (up to `batchSize` messages, for at most `batchWindowSeconds` after the first,
by ReceiveMessage calls of at most 10), invokes its function with the SQS event, deletes the
messages that succeeded and leaves the ones the function reports failed (`batchItemFailures`),
or the whole batch when the invocation failed, to come back after the visibility timeout and go to
the dead-letter queue after `maxReceiveCount` receives
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
The parameters come from infra/lib/event-source.json, which the stack and the benchmark's mapping
(tests/src/event_source.rs) read too. The mapping polls with the function's execution role:
its SQS client calls as the function (app id), so the IAM check evaluates its calls as that role."""
import json
import threading
import time

import boto3
from botocore.config import Config

from demo_services import FUNCTION_ENV, REGION, ROOT

SETTINGS = json.loads((ROOT / "infra/lib/event-source.json").read_text())
# The names the IAM check maps to the account stack's queues (infra/iam-check/recorded.ts).
QUEUE = "joinkeeper-lifecycle-events"
LIFECYCLE_FUNCTIONS = ("launch-hook", "terminate-hook")


def sqs_client(endpoint, app_id=None):
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(user_agent_appid=app_id))


def create_queue(endpoint):
    """The lifecycle queue and its dead-letter queue, as the account stack makes them; its URL."""
    sqs = sqs_client(endpoint)
    dlq = sqs.create_queue(QueueName=f"{QUEUE}-dead-letters")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    visibility = int(FUNCTION_ENV["JOINKEEPER_FUNCTION_TIMEOUT_SECONDS"]) * SETTINGS["visibilityTimeoutFactor"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": SETTINGS["maxReceiveCount"]}
    return sqs.create_queue(QueueName=QUEUE, Attributes={
        "VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(redrive)})["QueueUrl"]


def publish(endpoint, url, events):
    """EventBridge's SQS target: one message per event, its body the event."""
    sqs = sqs_client(endpoint)
    for event in events:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))


class Mapping:
    """The event source mappings of both lifecycle functions on the queue. `invoke(function,
    event, name)` answers (response, error) as DemoClient.invoke does."""

    def __init__(self, endpoint, url, invoke):
        self.endpoint, self.url, self.invoke = endpoint, url, invoke
        self.arn = sqs_client(endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.lock = threading.Lock()
        self.invocations = []  # (function, messages, failed message ids, error)

    def gather(self, sqs):
        """One batch: up to batchSize messages, for at most the window after the first."""
        batch, first = [], None
        while len(batch) < SETTINGS["batchSize"]:
            left = SETTINGS["batchWindowSeconds"] - (time.monotonic() - first) if first else 1
            if first and left <= 0:
                break
            got = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=min(10, SETTINGS["batchSize"] - len(batch)),
                                      WaitTimeSeconds=max(0, min(20, int(left))), AttributeNames=["All"]).get("Messages", [])
            if got and first is None:
                first = time.monotonic()
            batch += got
            if first is None:
                break
        return batch

    def record(self, m):
        """The record Lambda builds for a message."""
        return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "eventSourceARN": self.arn, "awsRegion": REGION}

    def poll(self, function, stop):
        sqs = sqs_client(self.endpoint, function)
        while not stop.is_set():
            batch = self.gather(sqs)
            if not batch:
                continue
            name = f"{function}-batch-{int(time.time() * 1000)}"
            res, err = self.invoke(function, {"Records": [self.record(m) for m in batch]}, name)
            ids = {m["MessageId"] for m in batch}
            failed = ids if res is None else {f["itemIdentifier"] for f in res.get("batchItemFailures", [])} & ids
            done = [m for m in batch if m["MessageId"] not in failed]
            for i in range(0, len(done), 10):
                sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(done[i:i + 10])])
            with self.lock:
                self.invocations.append((function, len(batch), sorted(failed), err))

    def deliver(self, expected, timeout=300):
        """Runs both mappings until `expected` messages were handled (deleted, or reported failed:
        those wait out their visibility timeout), or `timeout`. Returns this delivery's
        invocations: (function, messages, failed message ids, error)."""
        start = len(self.invocations)
        stop = threading.Event()
        pollers = [threading.Thread(target=self.poll, args=(f, stop), daemon=True) for f in LIFECYCLE_FUNCTIONS]
        for p in pollers:
            p.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sum(n for _, n, _, _ in self.invocations[start:]) >= expected:
                    break
            time.sleep(0.5)
        stop.set()
        for p in pollers:
            p.join()
        return self.invocations[start:]
