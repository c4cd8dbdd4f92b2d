#!/usr/bin/env bash
# Keeps one HTTP client and one TLS stack in the Lambda functions. Fails when `cargo tree` shows,
# for either Lambda target (x86_64 or arm64):
#   - two semver-incompatible versions (0.14 vs 1, 0.21 vs 0.23) of an HTTP/TLS crate: hyper,
#     http, http-body, h2, rustls, hyper-rustls, tokio-rustls;
#   - two crypto providers: ring next to aws-lc-rs.
# ring is the provider kept: `joinkeeper::aws::https_client` builds the SDK's hyper 1 / rustls 0.23
# client on ring (aws-smithy-http-client's `rustls-ring` feature), instead of the SDK's
# `default-https-client` feature, which selects aws-lc-rs: a larger library and a slower build. Any
# crate that enables `default-https-client` again brings aws-lc-rs back, and this check fails.
#
# Edges read: normal and build (everything `cargo lambda build --release` compiles). Dev
# dependencies are left out: the SDK's `test-util` features pull http 0.2 into test builds only
# (aws-smithy-protocol-test); they never reach a function. They are listed, not failed.
#
# Usage: bash scripts/check-deps.sh     (no build, reads Cargo.lock and the registry index cache;
#        a few seconds). Before the real check it proves on sample trees that it can fail.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

STACK_CRATES=(hyper http http-body h2 rustls hyper-rustls tokio-rustls)
TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)

# Reads `name vX.Y.Z` lines on stdin; prints one line per problem; exit 1 when there is one.
check_tree() {
  awk -v crates="${STACK_CRATES[*]}" '
    BEGIN { n = split(crates, c, " "); for (i = 1; i <= n; i++) watched[c[i]] = 1 }
    NF >= 2 && $2 ~ /^v[0-9]/ {
      name = $1; v = substr($2, 2); split(v, p, ".")
      major = (p[1] == "0") ? "0." p[2] : p[1]    # semver: 0.x.y is compatible within 0.x
      if (name in watched && !((name, major) in seen)) {
        seen[name, major] = 1; versions[name] = versions[name] " " v; count[name]++
      }
      if (name == "ring") ring = v
      if (name == "aws-lc-rs") awslc = v
    }
    END {
      bad = 0
      for (name in count) if (count[name] > 1) { print "two major versions of " name ":" versions[name]; bad = 1 }
      if (ring != "" && awslc != "") { print "two crypto providers: ring " ring " next to aws-lc-rs " awslc; bad = 1 }
      exit bad
    }'
}

self_test() {
  local good='hyper v1.12.0
rustls v0.23.46
aws-lc-rs v1.19.0
http v1.5.0
http v1.4.0'
  local two_hypers='hyper v1.12.0
hyper v0.14.32'
  local two_rustls='rustls v0.23.46
rustls v0.21.12'
  local two_providers='rustls v0.23.46
aws-lc-rs v1.19.0
ring v0.17.14'
  check_tree <<<"$good" >/dev/null || { echo "check-deps self-test: a one-stack tree was rejected" >&2; exit 2; }
  for sample in "$two_hypers" "$two_rustls" "$two_providers"; do
    if check_tree <<<"$sample" >/dev/null; then
      echo "check-deps self-test: a tree with two stacks was accepted:" >&2
      echo "$sample" >&2
      exit 2
    fi
  done
}

self_test

failed=0
for target in "${TARGETS[@]}"; do
  tree=$(cargo tree --workspace --target "$target" -e no-dev --prefix none -f '{p}' 2>/dev/null | sed 's/ (\*)$//' | sort -u)
  [[ -n "$tree" ]] || { echo "check-deps: cargo tree printed nothing for $target" >&2; exit 1; }
  if problems=$(check_tree <<<"$tree"); then
    echo "check-deps $target: one HTTP/TLS stack:" \
      "$(grep -E '^(hyper|rustls|h2|aws-lc-rs|ring) v' <<<"$tree" | tr '\n' ' ')"
  else
    failed=1
    while IFS= read -r p; do echo "check-deps $target: FAIL: $p" >&2; done <<<"$problems"
    echo "  see: cargo tree --target $target -e no-dev -i <crate>@<version>" >&2
  fi
done

dev=$(cargo tree --workspace -e all --prefix none -f '{p}' 2>/dev/null | sed 's/ (\*)$//' | sort -u)
if [[ $failed == 0 ]] && ! dev_problems=$(check_tree <<<"$dev"); then
  echo "check-deps: in test builds only (dev-dependencies, not failed): $(tr '\n' ';' <<<"$dev_problems")"
fi
exit "$failed"
