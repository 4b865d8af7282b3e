#!/usr/bin/env bash
# Contract test: schemathesis (pinned, from PyPI, in a virtual environment of this checkout)
# against `axe-gateway serve --sandbox` on a fresh SQLite database, with an admin token so that
# every operation is reachable. Every operation of /openapi.json, every check; fails on any
# server error or any response the document does not allow.
#
#   .ci/schemathesis.sh          CI mode: a bounded number of examples per operation (~2 min)
#   .ci/schemathesis.sh long     many more examples and a stateful phase, for a deeper run
#
# SCHEMATHESIS_MAX_EXAMPLES overrides the examples per operation; AXE_GATEWAY_BIN names a built
# binary (otherwise `cargo build` builds one). Reports land in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION="4.32.5"
MODE="${1:-short}"
case "$MODE" in
  short) EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"; PHASES="examples,coverage,fuzzing" ;;
  long) EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-300}"; PHASES="examples,coverage,fuzzing,stateful" ;;
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
TOKEN="contract-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
BASE="http://127.0.0.1:$PORT"

DATABASE_URL="sqlite://$WORK/gateway.db" \
  LISTEN_ADDR="127.0.0.1:$PORT" \
  SANDBOX_LISTEN_ADDR="127.0.0.1:$(free_port)" \
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
