#!/usr/bin/env bash
# `make fuzz` (and, at a bounded size, tests/test_fuzz_bounded.py in `make test`): schemathesis
# generates requests from our own OpenAPI document and sends them to the local run (NIF sandbox,
# Azurite, SFTP server) on free ports; any 5xx fails the run.
# Keys come from the document's security schemes (a schemathesis.toml written below): the function
# key for function-level routes, the master key for admin routes, none for health.
# Usage: devtools/fuzz.sh [max examples per operation, default 100] [more `schemathesis run` options]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-100}"
shift $(($# > 0 ? 1 : 0))
state="$(mktemp -d)"
ready="$state/ready.json"
.venv/bin/python -m devtools.run --ephemeral --no-persist \
  --state-dir "$state/run" --ready-file "$ready" >"$state/run.out" 2>"$state/run.err" &
run_pid=$!
trap 'kill -INT $run_pid 2>/dev/null; wait $run_pid 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 120); do [ -f "$ready" ] && break; sleep 0.5; done
[ -f "$ready" ] || { echo "local run did not start"; cat "$state/run.err"; exit 1; }
# JSON string escapes are valid TOML basic-string escapes, so json.dumps quotes the keys for TOML.
api=$(.venv/bin/python - "$ready" "$state/schemathesis.toml" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as toml:
    toml.write(f"[auth.openapi.functionKey]\napi_key = {json.dumps(info['functionKey'])}\n")
    toml.write(f"[auth.openapi.masterKey]\napi_key = {json.dumps(info['masterKey'])}\n")
print(info["api"])
PY
)
fkey=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['functionKey'])" "$ready")
curl -sf -H "x-functions-key: $fkey" "$api/openapi.json" -o "$state/openapi.json"
.venv-fuzz/bin/schemathesis --config-file "$state/schemathesis.toml" run "$state/openapi.json" --url "${api%/api}" \
  --checks not_a_server_error --max-examples "$examples" --workers 2 "$@"
