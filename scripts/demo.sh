#!/usr/bin/env bash
# The local end-to-end demo (the README's "run" command): installs what it needs, builds the
# functions, starts the local AWS API emulator and `cargo lambda watch`, and runs the whole join
# flow with no AWS account. Exits non-zero if any step does not happen as expected.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap-python.sh
export PATH="$root/.venv/bin:$PATH"
exec "$root/.venv/bin/python" "$root/scripts/demo.py" "$@"
