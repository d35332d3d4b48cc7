#!/usr/bin/env bash
# Starts the release binary as the container would (`serve`, non-default ports on loopback),
# waits for /readyz, checks /metrics and the metadata reference, then stops it with SIGTERM and
# requires a clean exit (graceful shutdown is what Kubernetes asks of it on every rollout).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/keda-llm-scaler
[ -x "$bin" ] || { echo "smoke: $bin missing; run scripts/build-release.sh" >&2; exit 1; }

"$bin" --version
"$bin" keys | grep -q '`ttftTargetMs`'

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
grpc=$(port); http=$(port)
log=$(mktemp)
KLS_GRPC_LISTEN="127.0.0.1:$grpc" KLS_HTTP_LISTEN="127.0.0.1:$http" KLS_LOG_FORMAT=json "$bin" serve >"$log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$http/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$http/readyz" >/dev/null
curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null
curl -fsS "http://127.0.0.1:$http/metrics" | grep -q '^# TYPE keda_llm_scaler_controllers gauge'

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "smoke: serve exited $rc after SIGTERM" >&2
  cat "$log" >&2
  exit 1
fi
grep -q '"shutting down"' "$log" || { echo "smoke: no graceful shutdown logged" >&2; cat "$log" >&2; exit 1; }
echo "smoke: release binary serves and stops cleanly on SIGTERM"
