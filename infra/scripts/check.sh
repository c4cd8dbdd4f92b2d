#!/usr/bin/env bash
# infra/scripts/check.sh — everything infra/ needs checked, offline and idempotent:
#   npm ci → typecheck → synth every variant into a temporary cdk.out → tests (node's test runner)
#   → cfn-lint every synthesized template with joinkeeper's policy rules → prove the policy rules
#   reject a deliberately bad template.
# Needs node >= 20 and npm (the npm registry); cfn-lint comes from the repository's Python venv
# (scripts/bootstrap-python.sh, run here when it is missing). Never runs cargo, and passes whatever
# ../target/lambda holds (nothing, x86_64 or arm64 functions): a variant whose architecture the
# built functions do not match synthesizes with placeholder bootstrap files (test/support.ts).
# A real deploy still refuses functions of the wrong architecture (lib/sources.ts).
# Usage: bash infra/scripts/check.sh        (from anywhere; exit status 0 only when all passed)
set -euo pipefail
infra=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$infra/.." && pwd)
started=$SECONDS
step() { printf '==> [%3ss] %s\n' "$((SECONDS - started))" "$*"; }
cd "$infra"

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

cfn_lint=${CFN_LINT:-$root/.venv/bin/cfn-lint}
if [[ ! -x "$cfn_lint" ]]; then
  step "cfn-lint missing: bootstrapping the Python tools"
  bash "$root/scripts/bootstrap-python.sh"
fi
[[ -x "$cfn_lint" ]] || { echo "cfn-lint not found at $cfn_lint" >&2; exit 1; }
export CFN_LINT=$cfn_lint JOINKEEPER_REQUIRE_CFN_LINT=1

step "typecheck (tsc --noEmit)"
npx tsc --noEmit -p .

out=$(mktemp -d "${TMPDIR:-/tmp}/joinkeeper-cdk-out.XXXXXX")
trap 'rm -rf "$out"' EXIT
step "synth all variants into $out"
npx tsx scripts/synth-all.ts "$out"
mapfile -t templates <"$out/templates.txt"

step "tests"
node --import tsx --test --test-concurrency=2 test/*.test.ts

step "cfn-lint + policy rules on ${#templates[@]} templates"
lint=("$cfn_lint" --non-zero-exit-code error --ignore-checks W3005 --append-rules "$infra/policy/rules" --)
"${lint[@]}" "${templates[@]}"

step "policy rules reject ssm:SendCommand on Resource \"*\""
if "${lint[@]}" "$infra/test/fixtures/policy/bad-sendcommand-star.json" >"$out/bad.txt" 2>&1; then
  echo "the policy rules accepted test/fixtures/policy/bad-sendcommand-star.json" >&2
  exit 1
fi
grep -q '^E9101 ' "$out/bad.txt" || { cat "$out/bad.txt" >&2; exit 1; }

step "infra check passed"
