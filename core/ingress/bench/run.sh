#!/usr/bin/env bash
# The ingress benchmark (a separate command, never part of ci/test):
#   core/ingress/bench/run.sh [DURATION] [CONNECTIONS]   (ROUNDS=3 by default)
# One run on this machine, in one script, so the ratios compare like with like:
#   1. the ingress (release build) in front of a bus endpoint
#      (GET https://bench.example/hello), through a real nats-server;
#   2. nginx reverse-proxying the same load to a plain hyper backend
#      answering the same bytes (keep-alive upstream, as deployed);
#   3. the floor: a bare hyper server forwarding each request as one raw
#      async-nats request to a raw responder (no buswarden code, no Microbus
#      framing): the most any HTTP-to-bus bridge gets on this machine;
# all driven by wrk (-t2, keep-alive). Prints throughput and p99 for each
# and the ratios (targets: throughput >= 0.8x nginx, p99 <= 1.5x), the
# floor's own ratios against nginx (what the targets ask of the bus hop
# itself), the ingress against the floor, and the ingress's overhead over a
# direct bus call from a Rust client.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
duration="${1:-10s}"
conns="${2:-64}"

# shellcheck source=/dev/null
source ci/deps.sh >/dev/null
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  echo "== installing wrk and nginx (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --locked -q -p ingress-core --example ingress-bench
bin="$CARGO_TARGET_DIR/release/examples/ingress-bench"

work="$(mktemp -d)"
cleanup() {
  [ -n "${nginx_pid:-}" ] && kill "$nginx_pid" 2>/dev/null || true
  exec 3>&- 2>/dev/null || true
  [ -n "${bench_pid:-}" ] && wait "$bench_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The server side: stdin held open by fd 3, so closing it stops the bench.
mkfifo "$work/in"
"$bin" <"$work/in" >"$work/out" 2>"$work/err" &
bench_pid=$!
exec 3>"$work/in"
for _ in $(seq 1 600); do
  grep -q '^ready ' "$work/out" 2>/dev/null && break
  kill -0 "$bench_pid" 2>/dev/null || { cat "$work/err"; exit 1; }
  sleep 0.1
done
grep -v '^ready ' "$work/out"
read -r _ ingress_port backend_port floor_port < <(grep '^ready ' "$work/out")

nginx_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$backend_port; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
sleep 0.5

run() { # name url -> "rps p99_us"
  local out rps p99
  out="$(wrk -t2 -c"$conns" -d"$duration" --latency "$2")"
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}' <<<"$out")"
  echo "$1: $rps req/s, p99 ${p99} us" >&2
  echo "$rps $p99"
}
# Warm both, then measure in alternating rounds (ingress, nginx, ingress,
# nginx, …) so a noisy neighbour on the shared cores hits both alike; each
# side's median round is compared.
rounds="${ROUNDS:-3}"
wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$ingress_port/bench.example/hello" >/dev/null
wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$nginx_port/hello" >/dev/null
wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$floor_port/hello" >/dev/null
: >"$work/ingress.txt"
: >"$work/nginx.txt"
: >"$work/floor.txt"
for r in $(seq 1 "$rounds"); do
  run "round $r ingress -> nats -> endpoint" "http://127.0.0.1:$ingress_port/bench.example/hello" >>"$work/ingress.txt"
  run "round $r nginx -> plain hyper backend" "http://127.0.0.1:$nginx_port/hello" >>"$work/nginx.txt"
  run "round $r floor: bare hyper -> raw nats request -> raw responder" "http://127.0.0.1:$floor_port/hello" >>"$work/floor.txt"
done
python3 - "$work/ingress.txt" "$work/nginx.txt" "$work/floor.txt" <<'PY'
import statistics, sys
def load(path):
    rows = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
(i_rps, i_p99), (n_rps, n_p99), (f_rps, f_p99) = (load(p) for p in sys.argv[1:4])
print(f"ingress (median of rounds): {i_rps:.0f} req/s, p99 {i_p99:.0f} us")
print(f"nginx   (median of rounds): {n_rps:.0f} req/s, p99 {n_p99:.0f} us")
print(f"floor   (median of rounds): {f_rps:.0f} req/s, p99 {f_p99:.0f} us")
t, l = i_rps / n_rps, i_p99 / n_p99
print(f"throughput ratio ingress/nginx: {t:.2f}x (target >= 0.80x) {'OK' if t >= 0.8 else 'BELOW TARGET'}")
print(f"p99 ratio ingress/nginx:        {l:.2f}x (target <= 1.50x) {'OK' if l <= 1.5 else 'ABOVE TARGET'}")
ft, fl = f_rps / n_rps, f_p99 / n_p99
print(f"floor/nginx: throughput {ft:.2f}x, p99 {fl:.2f}x "
      f"({'the floor itself misses' if ft < 0.8 or fl > 1.5 else 'the floor meets'} the targets)")
print(f"ingress/floor: throughput {i_rps / f_rps:.2f}x, p99 {i_p99 / f_p99:.2f}x")
PY
