"""--user-data-runner: an emulator that hands each launched instance's user data to a command
instead of running it (the demo boots the cluster stack's user data in sandboxes this way)."""

from __future__ import annotations

import json
import sys

import launch  # emulator/launch.py (conftest.py puts emulator/ on sys.path)
import pytest

from support import Aws, wait_for

# Records what it was given (argv, environment, the file's text) and exits 3.
RUNNER = """import json, os, sys
path = sys.argv[-1]
out = {"argv": sys.argv[1:], "text": open(path).read(),
       "env": {k: v for k, v in os.environ.items() if k.startswith(("JOINKEEPER_", "AWS_SDK_UA"))}}
open(os.path.join(os.environ["JOINKEEPER_NODE_DIR"], "runner.json"), "w").write(json.dumps(out))
print("runner booted", os.environ["JOINKEEPER_INSTANCE_ID"])
sys.exit(3)
"""


@pytest.fixture(scope="module")
def runner_emulator(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runner")
    (root / "runner.py").write_text(RUNNER)
    state = root / "state"
    runner = f"{sys.executable} {root / 'runner.py'} --mode 'a b'"
    with launch.start(state, log=root / "emulator.log", user_data_runner=runner, python=sys.executable) as emu:
        yield {"url": emu.url, "state": state}


def test_runner_gets_the_user_data_instead_of_bash(runner_emulator: dict) -> None:
    aws = Aws(runner_emulator)
    script = "#!/bin/bash\ntouch /tmp/never-run-by-bash\n/opt/joinkeeper/bin/joinkeeper-join --cluster c\n"
    tags = {"joinkeeper:cluster": "c", "joinkeeper:role": "worker", "emulator:join": "fail"}
    iid = aws.instance(tags, user_data=script)
    skipped = aws.instance(dict(tags, **{"emulator:user-data": "skip"}), user_data=script)
    node = runner_emulator["state"] / "nodes" / iid

    runs = wait_for(lambda: [r for r in aws.control("user-data") if r["status"] == "done"])
    assert [(r["instance_id"], r["exit_code"]) for r in runs] == [(iid, 3)]
    got = json.loads((node / "runner.json").read_text())
    # The file is its last argument, after the command's own (shell-split) arguments; its text is
    # the instance's, /opt/joinkeeper/ not mapped to the scripts folder.
    assert got["argv"] == ["--mode", "a b", str(node / "user-data")]
    assert got["text"] == script
    # The environment of any script on the instance: its id, role (principal), emulator tags.
    env = got["env"]
    assert env["JOINKEEPER_INSTANCE_ID"] == iid and env["AWS_SDK_UA_APP_ID"] == "worker"
    assert env["JOINKEEPER_EMULATOR_JOIN"] == "fail"
    assert env["JOINKEEPER_KUBE_STATE"] == f"{runner_emulator['state']}/clusters/c/"
    assert f"runner booted {iid}" in (node / "log" / "cloud-init-output.log").read_text()
    assert not (runner_emulator["state"] / "nodes" / skipped / "runner.json").exists()

    # Once the boot wrote the node's /var/log/joinkeeper (the sandbox's writable layer is the
    # node folder), scripts on the instance (Run Command) find the logs there, as on a real node.
    (node / "var" / "log" / "joinkeeper").mkdir(parents=True)
    doc = aws.document("jk-runner-logdir", ['echo "$JOINKEEPER_LOG_DIR"'])
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    inv = aws.wait_invocation(cid, iid)
    assert inv["StandardOutputContent"].strip() == str(node / "var" / "log" / "joinkeeper")
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[skipped])["Command"]["CommandId"]
    assert aws.wait_invocation(cid, skipped)["StandardOutputContent"].strip() == str(
        runner_emulator["state"] / "nodes" / skipped / "log"
    )
