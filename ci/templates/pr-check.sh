#!/usr/bin/env bash
# buswarden pull-request check (plain shell; the GitHub and GitLab templates
# call this file). Fails when a committed nats.acl is not true to code, an
# analyzer error stands, or a trust-root/wildcard grant is not in
# buswarden.toml. Always writes, for the pipeline to publish:
#   $OUT/gencreds.sarif  the analyzer's diagnostics (code scanning upload)
#   $OUT/grants.md       `busop diff --format markdown` base -> head (PR comment),
#                        opening with what can now reach what (reachability)
#   $OUT/reach-base.json, $OUT/reach-head.json
#                        both sides' reachability models (`gencreds graph`)
#
# Environment (all optional):
#   BUSWARDEN_ROOT   the tree holding the services (default .)
#   BUSWARDEN_BASE   the git revision the PR merges into (default origin/main)
#   BUSWARDEN_OUT    where to write the reports (default buswarden-pr)
# Needs gencreds and busop on PATH, and git history of the base revision.
# Exit: 0 clean, 1 the check failed, 2 a tool failed.
set -uo pipefail

root="${BUSWARDEN_ROOT:-.}"
base="${BUSWARDEN_BASE:-origin/main}"
out="${BUSWARDEN_OUT:-buswarden-pr}"
mkdir -p "$out" || exit 2

echo "== gencreds check $root"
gencreds check "$root"
check=$?
gencreds check "$root" --format sarif >"$out/gencreds.sarif" 2>/dev/null
sarif=$?
if [ "$sarif" -eq 2 ]; then
  echo "gencreds: could not write $out/gencreds.sarif" >&2
  exit 2
fi

# Both sides' reachability models, so the comment names the endpoints that
# become reachable from the internet and their required claims: the head
# from the checkout, the base from a snapshot of its tree (git archive).
models=()
snap="$(mktemp -d)" || exit 2
trap 'rm -rf "$snap"' EXIT
if git archive "$base" | tar -x -C "$snap" \
  && gencreds graph "$snap/$root" --format json --out "$out/reach-base.json" 2>/dev/null \
  && gencreds graph "$root" --format json --out "$out/reach-head.json" 2>/dev/null; then
  models=(--old-model "$out/reach-base.json" --new-model "$out/reach-head.json")
else
  echo "reachability models not built; the comment reads reachability from the rules" >&2
fi

echo "== busop diff git:$base:$root git:HEAD:$root"
if ! busop diff --format markdown "git:$base:$root" "git:HEAD:$root" ${models[@]+"${models[@]}"} >"$out/grants.md"; then
  echo "busop diff failed (is $base fetched?)" >&2
  exit 2
fi
cat "$out/grants.md"

exit "$check"
