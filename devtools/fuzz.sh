#!/usr/bin/env bash
# `make fuzz`: schemathesis generates requests from our own OpenAPI document and sends them to the
# local run (NIF sandbox, Azurite, SFTP server) on free ports; any 5xx fails the run.
# Usage: devtools/fuzz.sh [max examples per operation, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-100}"
state="$(mktemp -d)"
ready="$state/ready.json"
.venv/bin/python -m devtools.run --ephemeral --no-persist \
  --state-dir "$state/run" --ready-file "$ready" >"$state/run.out" 2>"$state/run.err" &
run_pid=$!
trap 'kill -INT $run_pid 2>/dev/null; wait $run_pid 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 120); do [ -f "$ready" ] && break; sleep 0.5; done
[ -f "$ready" ] || { echo "local run did not start"; cat "$state/run.err"; exit 1; }
api=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['api'])" "$ready")
key=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['masterKey'])" "$ready")
curl -sf -H "x-functions-key: $key" "$api/openapi.json" -o "$state/openapi.json"
.venv-fuzz/bin/schemathesis run "$state/openapi.json" --url "${api%/api}" -H "x-functions-key: $key" \
  --checks not_a_server_error --max-examples "$examples" --workers 2
