# Sourced by deploy.sh and approve.sh: one signed request to the account
# server. Expects $server (base URL), $key_args (buswarden-ci auth's key
# option, or empty for $BUSWARDEN_CI_KEY) and $work (a scratch folder).
# BUSWARDEN_CA: CA file for an https account server (curl --cacert).

curl_args=(--silent --show-error)
if [ -n "${BUSWARDEN_CA:-}" ]; then
  curl_args+=(--cacert "$BUSWARDEN_CA")
fi

# call METHOD PATH BODY-FILE|"" ANSWER-FILE [ALSO-OK-STATUS]: exit 1 when the
# server refuses, 2 when it cannot be reached.
call() {
  local method="$1" path="$2" body="$3" answer="$4" also_ok="${5:-}" auth code
  local body_args=() data_args=()
  if [ -n "$body" ]; then
    body_args=(--body "$body")
    data_args=(-H 'Content-Type: application/json' --data-binary "@$body")
  fi
  auth="$(buswarden-ci auth "$method" "$path" --server "$server" "${body_args[@]}" "${key_args[@]}")" || exit 2
  code="$(curl "${curl_args[@]}" -X "$method" -H "Authorization: $auth" "${data_args[@]}" \
    -o "$answer" -w '%{http_code}' "$server$path")" || {
    echo "$server unreachable" >&2
    exit 2
  }
  if [ "${code:0:1}" != 2 ] && [ "$code" != "$also_ok" ]; then
    echo "$method $path -> $code $(cat "$answer")" >&2
    exit 1
  fi
}
