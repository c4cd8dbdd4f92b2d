#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (Python venv with the emulator,
# AWS CLI, pytest, cfn-lint and cargo-lambda; shellcheck; npm packages for infra/), then runs
# the Rust unit and integration tests, the emulator's and node scripts' tests, the infra checks
# and the end-to-end demo scenario; last, the IAM check evaluates every AWS call those recorded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "installing tools"
bash scripts/bootstrap-python.sh
if ! command -v shellcheck >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck) >/dev/null
fi
export PATH="$root/.venv/bin:$PATH"

# Every suite that runs the emulator records the AWS calls it served in .calls/<suite>.jsonl; the
# IAM check at the end evaluates exactly this run's calls.
rm -rf .calls 2>/dev/null || rm -rf .calls
mkdir -p .calls

step "formatting"
cargo fmt --all -- --check
step "no import cycle between the modules of shared/ (scripts/check-cycles.py)"; python3 scripts/check-cycles.py
step "no import cycle between the modules of the emulator (scripts/check-cycles-python.py)"; python3 scripts/check-cycles-python.py emulator/jkemu

step "dependencies: one HTTP client and one TLS stack in the functions (cargo tree)"
bash scripts/check-deps.sh

step "Rust unit and integration tests (emulator over HTTP)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

step "benchmark: a burst of 10, 100 and 500 workers through the reconciler (figures, not a pass/fail test)"
cargo run -q -p joinkeeper-tests --example burst -- 10 100 500 --join-seconds 20 --arrival-seconds 10

step "chaos: one seeded run (at most 5 minutes) of several clusters under AWS's faults and killed invocations; fails on any invariant violation"
cargo run -q -p joinkeeper-tests --example chaos -- --seed 7 --minutes 5

if [[ -d emulator/tests ]]; then
  step "emulator tests"
  .venv/bin/python -m pytest emulator/tests -q
fi

if [[ -d node-scripts/tests ]]; then
  step "node scripts: shellcheck and tests"
  .venv/bin/python -m pytest node-scripts/tests -q
fi

if [[ -f infra/scripts/check.sh ]]; then
  step "infra: synth, assertions, cfn-lint, policy rules"
  bash infra/scripts/check.sh
fi

step "end-to-end demo scenario"
bash scripts/demo.sh --ci

step "IAM check: every recorded AWS call against the synthesized policies; must-deny cases; README table"
(cd infra && npx tsx scripts/iam-check.ts --calls "$root/.calls")

printf '\nall test suites passed\n'
