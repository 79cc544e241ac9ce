#!/usr/bin/env bash
# Installs the buswarden tools the templates call (gencreds, busop,
# buswarden-ci) with cargo, from BUSWARDEN_SRC: a checkout of buswarden (a
# path), or a git URL. Pin a revision with BUSWARDEN_REV when it is a URL.
set -euo pipefail
src="${BUSWARDEN_SRC:?set BUSWARDEN_SRC to a buswarden checkout or git URL}"
for pkg in gencreds busop buswarden-ci; do
  if [ -d "$src" ]; then
    cargo install --locked --path "$src/$(case $pkg in gencreds) echo gencreds ;; busop) echo operator-cli ;; buswarden-ci) echo ci/client ;; esac)"
  else
    cargo install --locked --git "$src" ${BUSWARDEN_REV:+--rev "$BUSWARDEN_REV"} "$pkg"
  fi
done
