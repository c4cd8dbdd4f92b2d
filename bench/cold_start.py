#!/usr/bin/env python3
"""Cold-start benchmark: the release token-refresher against a boto3 peer. Prints figures and
asserts nothing (exit 0 unless it could not run at all).

Both run under one fake Lambda Runtime API (the documented /2018-06-01/runtime endpoints and
headers, below) and against one local emulator seeded with a cluster whose join record is fresh,
so every scheduled run is a no-op refresh (no worker group waits; the control plane's SSM agent is
offline, so the rogue-Node listing, a Run Command round trip, is skipped). They are run alternately, `--rounds` times each, each
run a new process: spawn, first invocation, then `--warm` warm invocations.

Figures per function:
  start-up        spawn -> its first GET .../invocation/next
  first, warm     handing the event over (the /next answer) -> its POST .../response
  own time        the same minus the time its AWS requests spent in the emulator: the functions
                  talk to the emulator through a proxy here that times each request from its
                  arrival to the end of the answer (proxy + emulator), and that time is subtracted
  CPU             from /proc/<pid>/task/*/schedstat (ns) at first poll and after the first
                  invocation; in total from wait4() when the process has been stopped
  peak memory     VmHWM from /proc/<pid>/status before the process is stopped
and the size of each function's bootstrap and zip (target/lambda/<function>/bootstrap.zip from
`cargo lambda build --release --output-format zip` unless older than the bootstrap, else the
bootstrap zipped here with deflate).

Usage: bash bench/run.sh [--rounds N] [--warm N] [--functions-dir DIR] [--peer-python PY]
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from figures import FUNCTIONS, binary_of, elf_machine, med, mib, ms, print_table, sizes, summarize
from lambda_servers import REGION, Proxy, RuntimeApi, now

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "emulator"))
import launch  # noqa: E402  (emulator/launch.py)

CLUSTER = "bench"
PREFIX = "/joinkeeper"
TTL_SECONDS, MARGIN_SECONDS = 7200, 3600


# ---- emulator -------------------------------------------------------------------------------------


def start_emulator(state):
    try:
        return launch.start(state / "emulator", log=state / "emulator.log", scripts_dir=ROOT / "node-scripts")
    except launch.DidNotStart as err:
        sys.exit(str(err))


def seed(endpoint):
    """A cluster with a control plane and a fresh join record (+ meta, docs/contracts.md)."""
    import boto3
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2, ssm = boto3.client("ec2", **kw), boto3.client("ssm", **kw)
    # Its SSM agent is offline: the refresher's rogue-Node check finds no control plane to list
    # the Nodes on and stops there (that listing is a Run Command round trip, mostly waiting).
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.medium", TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "joinkeeper:cluster", "Value": CLUSTER},
                                              {"Key": "joinkeeper:role", "Value": "control-plane"},
                                              {"Key": "emulator:agent", "Value": "offline"}]}])
    created = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    record = {"version": 1, "cluster": CLUSTER, "source": "kubeadm", "endpoint": "10.0.0.10:6443", "token_id": "benchk",
              "token_secret": "0123456789abcdef", "ca_cert_hash": "sha256:" + "ab" * 32,
              "created_at": stamp(created), "expires_at": stamp(created + timedelta(seconds=TTL_SECONDS))}
    version = ssm.put_parameter(Name=f"{PREFIX}/{CLUSTER}/join-record", Value=json.dumps(record), Type="SecureString")["Version"]
    meta = {"version": 1, "cluster": CLUSTER, "token_id": record["token_id"], "created_at": record["created_at"],
            "expires_at": record["expires_at"], "record_version": version, "written_by": "i-bench"}
    ssm.put_parameter(Name=f"{PREFIX}/{CLUSTER}/join-record-meta", Value=json.dumps(meta), Type="String")


# ---- one function process -------------------------------------------------------------------------


def cpu_seconds(pid):
    """CPU time of every live thread of pid, from schedstat (ns resolution)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def scheduled_event():
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION, "resources": [f"arn:aws:events:{REGION}:123456789012:rule/joinkeeper-refresh"], "detail": {}}


def run_once(name, cmd, function, proxy, state, warm, invoke=True):
    """Spawns one function process and measures it; returns a dict of figures."""
    api = RuntimeApi(function)
    home = state / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", "TZ": "UTC",
        "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": proxy.url,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SDK_UA_APP_ID": function, "RUST_LOG": "info",
        "JOINKEEPER_PARAMETER_PREFIX": PREFIX, "JOINKEEPER_TOKEN_TTL_SECONDS": str(TTL_SECONDS),
        "JOINKEEPER_REFRESH_MARGIN_SECONDS": str(MARGIN_SECONDS),
    }
    log = open(state / f"{name}.log", "a")
    spawned = now()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    out = {"ok": False}
    try:
        polled = api.wait_first_poll(proc)
        out["startup"] = polled - spawned
        out["startup_outside"] = proxy.outside(spawned, polled)
        out["cpu_startup"] = cpu_seconds(proc.pid)
        out["rss_startup"] = status_kib(proc.pid, "VmRSS")
        if invoke:
            times, owns, ops, outcomes = [], [], [], []
            for i in range(1 + warm):
                handed, done, kind, body = api.invoke(scheduled_event())
                times.append(done - handed)
                owns.append(done - handed - proxy.outside(handed, done))
                ops.append(proxy.operations(handed, done))
                outcomes.append(outcome(kind, body))
                if i == 0:
                    out["cpu_first"] = cpu_seconds(proc.pid) - out["cpu_startup"]
                    cpu_after_first = cpu_seconds(proc.pid)
            out.update(first=times[0], first_own=owns[0], warm=times[1:], warm_own=owns[1:], ops=ops[0],
                       outcome=outcomes[0], warm_outcomes=set(outcomes[1:]))
            if warm:
                out["cpu_warm"] = (cpu_seconds(proc.pid) - cpu_after_first) / warm
        out["hwm"] = status_kib(proc.pid, "VmHWM")
        out["ok"] = True
    except RuntimeError as err:
        out["error"] = str(err)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        out["cpu_total"] = usage.ru_utime + usage.ru_stime
        out["maxrss"] = usage.ru_maxrss
        api.stop()
        log.close()
    return out


def outcome(kind, body):
    if kind == "error":
        return "error: " + body.decode(errors="replace")[:200]
    try:
        result = json.loads(body)
        clusters = result["refresh"]["clusters"]
        return ",".join(f"{c['cluster']}={c['outcome']}" for c in clusters) or "no clusters"
    except (ValueError, KeyError, TypeError):
        return "answer: " + body.decode(errors="replace")[:200]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="cold starts of each function (default 5)")
    parser.add_argument("--warm", type=int, default=20, help="warm invocations after each cold start (default 20)")
    parser.add_argument("--functions-dir", type=Path, default=ROOT / "target/lambda")
    parser.add_argument("--peer-python", default=str(ROOT / ".venv/bin/python"), help="interpreter of the boto3 peer")
    args = parser.parse_args()

    print(f"functions: {args.functions_dir}")
    print(f"{'function':<18}{'bootstrap':>14}{'zip':>14}  zip from")
    for fn, bsize, zsize, how in sizes(args.functions_dir):
        b = f"{bsize / 1e6:.2f} MB" if bsize else "-"
        z = f"{zsize / 1e6:.2f} MB" if zsize else "-"
        print(f"{fn:<18}{b:>14}{z:>14}  {how}")

    state = Path(tempfile.mkdtemp(prefix="joinkeeper-bench-"))
    host = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine().lower())
    binaries = {fn: binary_of(args.functions_dir, fn, state / "bin") for fn in FUNCTIONS}
    runnable = {fn: b for fn, b in binaries.items() if b and elf_machine(b) == host}
    for fn, b in binaries.items():
        if fn not in runnable:
            why = "not built" if not b else f"built for {elf_machine(b)}, this machine is {host}"
            print(f"skipping {fn}: {why} (cargo lambda build --release builds for this machine's x86_64)")
    try:
        peer_ok = subprocess.run([args.peer_python, "-c", "import boto3"], capture_output=True).returncode == 0
    except OSError:
        peer_ok = False
    if not peer_ok:
        print(f"skipping the boto3 peer: `import boto3` fails with {args.peer_python}")
    if "token-refresher" not in runnable and not peer_ok:
        print("nothing to run")
        return

    emulator = start_emulator(state)
    proxy = Proxy(emulator.url)
    try:
        seed(emulator.url)
        candidates = []
        if "token-refresher" in runnable:
            candidates.append(("token-refresher", [str(runnable["token-refresher"])]))
        if peer_ok:
            candidates.append(("boto3 peer", [args.peer_python, str(ROOT / "bench/peer_refresher.py")]))
        runs = {name: [] for name, _ in candidates}
        for r in range(args.rounds):
            order = candidates if r % 2 == 0 else list(reversed(candidates))
            for name, cmd in order:
                res = run_once(name.replace(" ", "-"), cmd, "token-refresher", proxy, state, args.warm)
                runs[name].append(res)
                status = res.get("outcome", res.get("error", "?"))
                print(f"round {r + 1} {name:<16} start-up {ms(res.get('startup')):>10}  first {ms(res.get('first')):>10}  "
                      f"VmHWM {mib(res.get('hwm')):>9}  {status}", flush=True)
        hooks = {fn: [run_once(fn, [str(b)], fn, proxy, state, 0, invoke=False) for _ in range(args.rounds)]
                 for fn, b in runnable.items() if fn != "token-refresher"}
    finally:
        proxy.shutdown()
        emulator.stop()
        shutil.rmtree(state / "emulator", ignore_errors=True)
        shutil.rmtree(state / "bin", ignore_errors=True)

    table = {name: summarize(rs) for name, rs in runs.items()}
    print_table(f"token-refresher, no-op scheduled refresh ({args.rounds} cold starts, {args.warm} warm invocations each; "
                f"medians)", table)
    for name, rs in runs.items():
        good = [r for r in rs if r["ok"]]
        if good:
            print(f"{name}: AWS calls of the first invocation: {', '.join(good[0]['ops']) or 'none'}; "
                  f"outcome {good[0]['outcome']}; warm outcomes {', '.join(sorted(good[0]['warm_outcomes'])) or '-'}")
        for r in rs:
            if not r["ok"]:
                print(f"{name}: failed run: {r.get('error')}")
    rust, peer = (summarize(runs.get(k, [])) for k in ("token-refresher", "boto3 peer"))
    if rust and peer:
        def ratio(key, raw):
            a = med(raw("token-refresher")), med(raw("boto3 peer"))
            return f"{a[1] / a[0]:.1f}x" if a[0] and a[1] else "-"
        per = lambda k: lambda n: [r.get(k) for r in runs[n] if r["ok"]]  # noqa: E731
        warm_own = lambda n: [w for r in runs[n] if r["ok"] for w in r.get("warm_own", [])]  # noqa: E731
        print(f"peer / token-refresher: start-up {ratio('startup', per('startup'))}, "
              f"first invocation own time {ratio('first_own', per('first_own'))}, "
              f"warm own time {ratio('warm_own', warm_own)}, "
              f"peak memory {max(r['hwm'] for r in runs['boto3 peer'] if r['ok']) / max(r['hwm'] for r in runs['token-refresher'] if r['ok']):.1f}x")
        same = [r["ops"] for r in runs["token-refresher"] if r["ok"]][:1] == [r["ops"] for r in runs["boto3 peer"] if r["ok"]][:1]
        print(f"same AWS calls in the first invocation: {'yes' if same else 'NO (see the lists above)'}")
    if hooks:
        print_table("hooks: start-up only (spawn -> first poll; medians)",
                    {fn: {k: v for k, v in (summarize(rs) or {}).items()
                          if k.startswith(("runs", "start-up", "CPU at", "RSS", "peak"))} for fn, rs in hooks.items()})
    print(f"\nfunction and emulator logs: {state}")


if __name__ == "__main__":
    main()
