#!/usr/bin/env bash
# Contract test: schemathesis (pinned, from PyPI, in a virtual environment of this checkout)
# against `axe-gateway serve --sandbox` on a fresh SQLite database, with an admin token so that
# every operation is reachable. Every operation of /openapi.json, every check (the exceptions,
# and why, are in .ci/schemathesis.toml); fails on any server error or any response the
# document does not allow.
#
#   .ci/schemathesis.sh          CI mode: 150 examples per operation, fixed seed (under a minute)
#   .ci/schemathesis.sh long     1,000 examples per operation (about six minutes); vary the seed
#                                with SCHEMATHESIS_SEED to explore further
#
# SCHEMATHESIS_MAX_EXAMPLES overrides the examples per operation; AXE_GATEWAY_BIN names a built
# binary (otherwise `cargo build` builds one). Reports land in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION="4.32.5"
MODE="${1:-short}"
case "$MODE" in
  short) EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-150}"; PHASES="examples,coverage,fuzzing,stateful" ;;
  long) EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-1000}"; PHASES="examples,coverage,fuzzing,stateful" ;;
  *) echo "usage: $0 [short|long]" >&2; exit 2 ;;
esac

VENV=".ci/.venv"
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

BIN="${AXE_GATEWAY_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --quiet --bin axe-gateway
  BIN="${CARGO_TARGET_DIR:-target}/debug/axe-gateway"
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

WORK="$(mktemp -d)"
REPORTS="${CARGO_TARGET_DIR:-target}/schemathesis"
mkdir -p "$REPORTS"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(free_port)"
SANDBOX_PORT="$(free_port)"
TOKEN="contract-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
BASE="http://127.0.0.1:$PORT"

DATABASE_URL="sqlite://$WORK/gateway.db" \
  LISTEN_ADDR="127.0.0.1:$PORT" \
  SANDBOX_LISTEN_ADDR="127.0.0.1:$SANDBOX_PORT" \
  API_TOKENS="contract:$TOKEN" \
  RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN" serve --sandbox >"$REPORTS/server.log" 2>&1 &
SERVER=$!

for _ in $(seq 1 100); do
  curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "FAIL: the gateway did not start:" >&2
    cat "$REPORTS/server.log" >&2
    exit 1
  fi
  sleep 0.2
done

# A binding with a recorded call, so that the call routes answer with data as well as 404s.
api() {
  curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"
}
BINDING_ID="$(api -X POST "$BASE/v1/bindings" \
  -d '{"order_id":"contract-seed","bind_num":"+8613800000001","area_code":"0755","record":true}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
"$BIN" sandbox-call --sandbox-url "http://127.0.0.1:$SANDBOX_PORT" --gateway-url "$BASE" \
  --token "$TOKEN" --binding "$BINDING_ID" --record >>"$REPORTS/server.log" 2>&1
CALL_ID=""
for _ in $(seq 1 50); do
  CALL_ID="$(api "$BASE/v1/bindings/$BINDING_ID/calls" |
    python3 -c 'import json, sys; items = json.load(sys.stdin)["items"]; print(items[0]["id"] if items and items[0]["record"] else "")')"
  [ -n "$CALL_ID" ] && break
  sleep 0.2
done
if [ -z "$CALL_ID" ]; then
  echo "FAIL: the seeded call did not arrive (see $REPORTS/server.log)" >&2
  exit 1
fi
export BINDING_ID CALL_ID

echo "== schemathesis $SCHEMATHESIS_VERSION ($MODE: $EXAMPLES examples per operation) against $BASE"
status=0
"$VENV/bin/st" --config-file .ci/schemathesis.toml run "$BASE/openapi.json" \
  --checks all \
  --phases "$PHASES" \
  --max-examples "$EXAMPLES" \
  --workers 2 \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --header "Authorization: Bearer $TOKEN" \
  --request-timeout 10 \
  --report junit --report-dir "$REPORTS" \
  || status=$?

if grep -q "panicked" "$REPORTS/server.log"; then
  echo "FAIL: the gateway panicked (see $REPORTS/server.log):" >&2
  grep -A5 "panicked" "$REPORTS/server.log" >&2
  status=1
fi
exit "$status"
