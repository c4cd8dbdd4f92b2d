#!/usr/bin/env bash
# Creates (or refreshes) the project's Python virtual environment in .venv: the local AWS API
# emulator (moto server), the AWS CLI the node scripts call, pytest, cfn-lint and cargo-lambda.
# Idempotent: does nothing when .venv already matches emulator/requirements.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
req="$root/emulator/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "==> installing Python tools into .venv (moto server, AWS CLI, pytest, cfn-lint, cargo-lambda)"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
