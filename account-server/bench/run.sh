#!/usr/bin/env bash
# Benchmarks of the account server (not part of the tests): resolver GETs/s
# and p99 under wrk against nginx serving the same JWT as a static file,
# revocation propagation to a real nats-server over 100 revocations, and
# signing a deploy of 500 services. Figures are printed with their baseline
# from the same run; record them in docs/benchmarks-account-server.md.
#   account-server/bench/run.sh          full size (about a minute)
#   account-server/bench/run.sh --toy    tiny size, a smoke check
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ci/deps.sh
source ci/deps.sh
for tool in wrk nginx; do
  if ! command -v "$tool" >/dev/null; then
    echo "== installing $tool (Debian)"
    apt-get install -y "$tool" >/dev/null
  fi
done
cargo bench -p account-server --bench account_server -- "$@"
