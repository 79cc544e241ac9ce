#!/usr/bin/env bash
# buswarden scheduled trust-root audit (plain shell; the GitHub and GitLab
# templates call this file). Lists every trust-root (:666, `danger`) grant in
# the deployed .creds files (or committed nats.acl files), then runs
# `busop audit`: policy violations, wildcard grants, expired or expiring
# credentials, and grants blocks that do not match their signed JWT.
#
#   audit.sh [DIR]   DIR holds *.creds and/or nats.acl files (default .)
#
# Environment (optional):
#   BUSWARDEN_POLICY  the buswarden.toml to hold the grants to
#                     (default: DIR/buswarden.toml when present)
#   BUSWARDEN_OUT     where to write audit.json (default buswarden-audit)
# Needs busop and grep on PATH. Exit: 0 clean, 1 findings, 2 error.
set -uo pipefail

dir="${1:-.}"
out="${BUSWARDEN_OUT:-buswarden-audit}"
mkdir -p "$out" || exit 2
policy_args=()
if [ -n "${BUSWARDEN_POLICY:-}" ]; then
  policy_args=(--policy "$BUSWARDEN_POLICY")
fi

echo "== trust-root grants: grep '\\.danger\\.'"
grep -r --include='*.creds' --include='nats.acl' '\.danger\.' "$dir"
case $? in
  0) ;;
  1) echo "(none)" ;;
  *) exit 2 ;;
esac

echo "== busop audit $dir"
busop audit "$dir" "${policy_args[@]}"
status=$?
busop audit "$dir" "${policy_args[@]}" --format json >"$out/audit.json"
exit "$status"
