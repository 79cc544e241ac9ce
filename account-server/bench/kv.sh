#!/usr/bin/env bash
# Benchmark of the JetStream KV store against the embedded store (not part
# of the tests): lifecycle calls per second and revocation propagation p50
# and p99, each store on its own three-node nats-server 2.15.1 cluster on
# loopback, in the same run. Record figures in docs/benchmarks-kv.md.
#   account-server/bench/kv.sh          full size
#   account-server/bench/kv.sh --toy    tiny size, a smoke check
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ci/deps.sh
source ci/deps.sh
# Release profile (cargo bench's default), as a deployment would run; the
# figures are compared within the run.
cargo bench -p account-server --bench kv -- "$@"
