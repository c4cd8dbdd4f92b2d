#!/usr/bin/env bash
# Cold-start benchmark of the release functions against a boto3 peer (figures only, asserts
# nothing): see bench/cold_start.py. Uses the functions `cargo lambda build --release` left in
# target/lambda (built for this machine's architecture; arm64 binaries are skipped, saying so).
# Usage: bash bench/run.sh [--build] [--rounds N] [--warm N] [--functions-dir DIR] [--peer-python PY]
#   --build   first runs `cargo lambda build --release` and `... --output-format zip` (niced): the
#             binaries for infra/ and the zips whose sizes are printed (the second is only a zip step)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap-python.sh
export PATH="$root/.venv/bin:$PATH"
if [[ ${1:-} == --build ]]; then
  shift
  nice -n 10 cargo lambda build --release
  nice -n 10 cargo lambda build --release --output-format zip
fi
exec "$root/.venv/bin/python" "$root/bench/cold_start.py" "$@"
