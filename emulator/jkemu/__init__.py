"""joinkeeper's local AWS API emulator: moto 5.2.5 in server mode, plus the behaviour it lacks.

    python emulator/joinkeeper_emulator.py --host 127.0.0.1 --port 0 --state-dir DIR \
        [--scripts-dir node-scripts] [--record-calls PATH]

Prints one line `ready http://HOST:PORT` on stdout once it accepts connections (port 0 picks a
free port); everything else goes to stderr.

Gaps in moto that this launcher fills, by monkeypatching moto's classes at start:

 1. SSM Run Command does nothing in moto: SendCommand answers Success at once, executes nothing,
    and with only InstanceIds targets *every* instance of the region (its Targets filter is empty,
    so it matches everything). GetCommandInvocation always says Success/exit 0/empty output;
    ListCommandInvocations and CancelCommand are not implemented (HTTP 500).
    -> SendCommand, GetCommandInvocation, ListCommands, ListCommandInvocations and CancelCommand
       are replaced (SimpleSystemManagerResponse methods). The command targets exactly the listed
       instances (or the Targets `InstanceIds`/`tag:<k>`/`tag-key` match), its document (schema
       2.2, aws:runShellScript steps) is rendered with the parameters and run with bash on this
       machine in a background thread, with real statuses, exit codes and captured output.
 2. DescribeInstanceInformation is not implemented (HTTP 500).
    -> every running instance whose tag `emulator:agent` is not `offline` is a managed node with
       PingStatus Online.
 3. Auto Scaling lifecycle hooks are stored but have no effect; CompleteLifecycleAction and
    RecordLifecycleActionHeartbeat are not implemented (HTTP 500); NotificationMetadata and
    CreateAutoScalingGroup's LifecycleHookSpecificationList are dropped.
    -> launching/terminating instances wait in Pending:Wait / Terminating:Wait until the action is
       completed, or until the heartbeat timeout applies the hook's DefaultResult (checked lazily
       before requests, at most every 0.2 s, and before every completion and heartbeat).
       FakeAutoScalingGroup.set_desired_capacity and
       AutoScalingBackend.terminate_instance are replaced so that instances in the wait states
       count (or not) toward capacity as on AWS.
 4. No service emits events. -> each lifecycle action appends an EventBridge-shaped event
    (`EC2 Instance-launch Lifecycle Action` / `EC2 Instance-terminate Lifecycle Action`) to an
    outbox read through the control API under /_joinkeeper/.
 5. User data is stored but never runs. -> like cloud-init, it runs once in the background when an
    instance is launched (RunInstances or an Auto Scaling group).
 6. Scripts calling back into the emulator with the aws CLI cannot pick a moto account (no way to
    send the x-moto-account-id header). -> an access key id made of 12 digits selects that account
    (as LocalStack does); scripts of instances outside the default account get such a key.
 7. Warm pools are stored only (DescribeWarmPool lists no instances). -> the pool is filled to
    its size and instances move into it, out of it for service, back on scale-in
    (ReuseOnScaleIn) and out to be terminated, each through the lifecycle hooks with the event's
    Origin/Destination (EC2, AutoScalingGroup, WarmPool) and the Warmed:* states.
 8. A stopped instance that starts runs nothing, keeps its first LaunchTime, and instances have
    no metadata. -> boot units (<node dir>/boot-units/) run at each restart, user data only at
    the first boot; LaunchTime is the last start; the target lifecycle state is kept in
    <node dir>/imds/autoscaling/target-lifecycle-state.
 9. Nothing records who called what. -> with --record-calls PATH every AWS request is appended
    as one JSON line (caller from the User-Agent app id, IAM action, resource ARNs and condition
    keys, SSM's KMS calls) for an offline IAM policy check.
10. Every call succeeds at once and Run Command has no agent. -> POST /_joinkeeper/faults
    injects AWS's failures, seeded (throttling in each protocol's shape, token buckets at AWS's
    rates, 5xx, answers lost after the call took effect, latency); an SSM agent per instance runs
    5 commands at a time and buffers 5, leaves the rest undelivered until their delivery timeout,
    and can go offline while SSM still lists it Online (POST /_joinkeeper/agents/<id>).
11. DescribeScalingActivities answers an empty list. -> each instance move (launch into the group
    or the warm pool, out of the pool for service, back to it, terminations) starts a scaling
    activity with AWS's wording, at the moment it starts (a launch from the warm pool: when it
    left the pool); DescribeScalingActivities lists them newest first, paged.
12. moto's EC2 tags, SQS visibility checks and backend lookup cost the whole region's tags, two
    `datetime` calls per queued message, and a directory listing, per request. -> the same
    answers at a cost that scales with a burst of 2,000 workers (jkemu/speedups.py).

Choices (also in emulator/README.md):
 - An undeliverable command invocation (tag emulator:agent=undeliverable) ends as Status Failed,
   StatusDetails Undeliverable, ResponseCode -1: what GetCommandInvocation reports on AWS when the
   agent cannot be reached. An execution timeout ends as TimedOut / ExecutionTimedOut with
   ResponseCode 137 (the Linux SSM agent's CommandStoppedPreemptivelyExitCode); so does a cancel
   of a running command (Cancelled / Cancelled / 137).
 - ABANDON of a launch action terminates the instance and removes it from the group, but the group
   is *not* refilled (AWS would launch a replacement); set the desired capacity again to refill.
 - Multiple hooks for one transition: the instance moves on when every action has been completed
   with CONTINUE; the first ABANDON ends the wait at once.

Modules, by concern: common (constants, configuration, state), scripts (running a script as if on
an instance), documents / invocations / run_command / command_listing (Run Command),
managed_nodes, lifecycle / lifecycle_api / capacity (Auto Scaling lifecycle hooks and capacity),
warm_pool / warm_pool_api (warm pools), activities (scaling activities), boot_units,
imds (target lifecycle state),
recorder / iam_context / iam_ssm / iam_compute (record of AWS calls), agent (the SSM agent),
faults / rate_limits / fault_http (AWS's failures), user_data,
accounts, control_api, server (patches, WSGI app, main).
"""
