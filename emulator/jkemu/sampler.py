"""An opt-in sampling profiler, to find what limits the emulator under a large burst
(`JKEMU_SAMPLE=PATH`): every 20 ms it takes each busy thread's stack (not those waiting on a
socket, a lock or a sleep) and counts its emulator and moto frames; every 10 s it writes the
most frequent frames and stacks to PATH. Diagnostics only: nothing reads it."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from pathlib import Path

IDLE = ("wait", "select", "poll", "accept", "recv_into", "readinto", "sleep", "acquire", "readline")


def frames(frame) -> list[str]:
    out = []
    while frame is not None:
        code = frame.f_code
        name = code.co_filename
        if "jkemu" in name or "/moto/" in name or "werkzeug" in name or "xmltodict" in name or "jinja" in name:
            short = name.split("/site-packages/")[-1].split("/emulator/")[-1]
            out.append(f"{short}:{code.co_name}")
        frame = frame.f_back
    return out


def run(path: Path) -> None:
    me = threading.get_ident()
    own: collections.Counter = collections.Counter()
    stacks: collections.Counter = collections.Counter()
    samples, last = 0, time.monotonic()
    while True:
        time.sleep(0.02)
        samples += 1
        for ident, frame in sys._current_frames().items():
            if ident == me or frame.f_code.co_name in IDLE:
                continue
            chain = frames(frame)
            if not chain:
                continue
            own[chain[0]] += 1
            stacks[" < ".join(chain[:6])] += 1
        if time.monotonic() - last > 10:
            last = time.monotonic()
            lines = [f"{samples} samples of 20 ms; busy-thread samples by innermost frame:"]
            lines += [f"{n:7d}  {f}" for f, n in own.most_common(40)]
            lines += ["", "stacks:"] + [f"{n:7d}  {s}" for s, n in stacks.most_common(30)]
            path.write_text("\n".join(lines) + "\n")


def start_if_asked() -> None:
    path = os.environ.get("JKEMU_SAMPLE")
    if path:
        threading.Thread(target=run, args=(Path(path),), daemon=True, name="sampler").start()
