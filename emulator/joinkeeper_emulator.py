#!/usr/bin/env python3
"""joinkeeper's local AWS API emulator (launcher; the code is the package `jkemu` beside it).

    python emulator/joinkeeper_emulator.py --host 127.0.0.1 --port 0 --state-dir DIR \
        [--scripts-dir node-scripts] [--record-calls PATH]

Prints one line `ready http://HOST:PORT` on stdout once it accepts connections; everything else
goes to stderr. See emulator/README.md and jkemu/__init__.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from jkemu.server import main
except ImportError as missing:  # pragma: no cover - set-up hint
    sys.exit(
        f"joinkeeper emulator: {missing}; run `bash scripts/bootstrap-python.sh` and use .venv/bin/python"
    )

if __name__ == "__main__":
    main()
