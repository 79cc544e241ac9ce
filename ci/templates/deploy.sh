#!/usr/bin/env bash
# buswarden deploy through the account server (plain shell; the GitHub and
# GitLab templates call this file).
#
#   deploy.sh sign       open the deploy (once), sign one user per service,
#                        write $BUSWARDEN_CREDS_OUT/<hostname>_nats.creds
#   deploy.sh activate   after the rollout: make this deploy the active one
#                        (the previous deploy's key leaves after the grace)
#
# User keys are made on this machine and never leave it: the account server
# receives public keys and the committed rule sets, checks them against its
# own buswarden.toml, and signs with a fresh per-deploy signing key.
#
# Environment:
#   BUSWARDEN_ACCOUNT_SERVER  base URL, e.g. https://accounts.internal:7370 (required)
#   BUSWARDEN_CI_KEY          the CI request key's seed (a secret; listed in the
#                             account server's config with role ci), or
#   BUSWARDEN_CI_KEY_FILE     a file holding it
#   BUSWARDEN_DEPLOY          the deploy id, e.g. the commit (required;
#                             letters, digits, . _ -)
#   BUSWARDEN_ROOT            the tree holding the services (default .)
#   BUSWARDEN_CREDS_OUT       where to write the .creds files (default creds)
#   BUSWARDEN_EXPIRES         user lifetime, e.g. 7d (default: the server's)
#   BUSWARDEN_PLANE           the plane the server signs for (default microbus)
#   BUSWARDEN_CA              CA file for an https account server (curl --cacert)
# The first deploy with a trust-root (:666) grant, and any deploy adding one,
# needs an operator's approval first (approve.sh); the refusal names the rule.
# Needs gencreds, buswarden-ci and curl on PATH.
# Exit: 0 done, 1 refused (check failed, or the server said no), 2 error.
set -euo pipefail

step="${1:-sign}"
server="${BUSWARDEN_ACCOUNT_SERVER:?set BUSWARDEN_ACCOUNT_SERVER}"
deploy="${BUSWARDEN_DEPLOY:?set BUSWARDEN_DEPLOY}"
root="${BUSWARDEN_ROOT:-.}"
out="${BUSWARDEN_CREDS_OUT:-creds}"
plane="${BUSWARDEN_PLANE:-microbus}"
key_args=()
if [ -n "${BUSWARDEN_CI_KEY_FILE:-}" ]; then
  key_args=(--key "$BUSWARDEN_CI_KEY_FILE")
elif [ -z "${BUSWARDEN_CI_KEY:-}" ]; then
  echo "deploy.sh: set BUSWARDEN_CI_KEY or BUSWARDEN_CI_KEY_FILE" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# shellcheck source=ci/templates/account-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/account-server.sh"

case "$step" in
  sign)
    echo "== gencreds check $root"
    gencreds check "$root" || exit 1
    buswarden-ci users-request "$root" --keys "$work/keys" \
      ${BUSWARDEN_EXPIRES:+--expires "$BUSWARDEN_EXPIRES"} >"$work/users.json"
    printf '{"deploy":"%s"}' "$deploy" >"$work/open.json"
    echo "== open deploy $deploy"
    # 409: opened by an earlier run (signing was refused until an approval).
    call POST /v1/deploys "$work/open.json" "$work/opened.json" 409
    echo "== sign users"
    call POST "/v1/deploys/$deploy/users" "$work/users.json" "$work/signed.json"
    buswarden-ci write-creds --response "$work/signed.json" --keys "$work/keys" \
      --out "$out" --plane "$plane"
    ;;
  activate)
    echo "== activate deploy $deploy"
    call POST "/v1/deploys/$deploy/activate" "" "$work/activated.json"
    cat "$work/activated.json"; echo
    ;;
  *)
    echo "deploy.sh: unknown step $step (sign | activate)" >&2
    exit 2
    ;;
esac
