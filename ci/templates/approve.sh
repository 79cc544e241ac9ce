#!/usr/bin/env bash
# An operator approves trust-root (:666) grants for one deploy (plain shell).
# The account server refuses to sign a PUB on `danger.666` that the active
# deploy's user of the same hostname did not have, until approved:
#
#   approve.sh DEPLOY 'PUB {{plane}}.danger.666.gateway_example.access_token_core.*.POST.mint' ...
#
# Environment:
#   BUSWARDEN_ACCOUNT_SERVER    base URL (required)
#   BUSWARDEN_OPERATOR_KEY_FILE the operator's request key (role operator; required)
#   BUSWARDEN_CA                CA file for an https account server
# Needs buswarden-ci and curl on PATH. Exit: 0 done, 1 refused, 2 error.
set -euo pipefail

server="${BUSWARDEN_ACCOUNT_SERVER:?set BUSWARDEN_ACCOUNT_SERVER}"
key_args=(--key "${BUSWARDEN_OPERATOR_KEY_FILE:?set BUSWARDEN_OPERATOR_KEY_FILE}")
deploy="${1:?usage: approve.sh DEPLOY RULE...}"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# shellcheck source=ci/templates/account-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/account-server.sh"

for rule in "$@"; do
  case "$deploy$rule" in
    *'"'* | *'\'*) echo "approve.sh: quotes or backslashes in: $deploy $rule" >&2; exit 2 ;;
  esac
  printf '{"deploy":"%s","rule":"%s"}' "$deploy" "$rule" >"$work/approval.json"
  call POST /v1/approvals "$work/approval.json" "$work/approved.json"
  echo "approved for $deploy: $rule"
done
