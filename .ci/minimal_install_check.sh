#!/usr/bin/env bash
# The minimal-install check (issue 16): a second, fresh virtual environment made exactly as
# README command 1 makes it (run verbatim, in a clean copy of this tree, its demo writing into
# a temporary data folder), then every entry of every catalogs/*.yml opened through plain
# intake.open_catalog with that venv alone. The S3 and MongoDB entries are opened against a moto
# and a SecantusDB server started by the full test venv (DEV_PYTHON, default .venv/bin/python);
# without it they are skipped, and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV_PYTHON=${DEV_PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
SERVERS_PID=
cleanup() {
    if [ -n "$SERVERS_PID" ]; then  # closing its input stops the servers
        eval "exec ${SERVERS_IN}>&-" || true
        wait "$SERVERS_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# a clean copy of the tree (no venvs, no data written by tests)
git ls-files -z | (cd "$ROOT" && xargs -0 tar cf - --no-recursion) | (mkdir -p "$WORK/tree" && cd "$WORK/tree" && tar xf -)
cd "$WORK/tree"
COMMAND=$(sed -n 's/^\(python3 -m venv \.venv && .*\.venv\/bin\/intake-broker demo\)$/\1/p' README.md | head -1)
if [ -z "$COMMAND" ]; then echo "README command 1 not found in README.md" >&2; exit 1; fi
echo "+ $COMMAND"
INTAKE_BROKER_DATA="$WORK/demo-data" bash -c "$COMMAND" > "$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log"; exit 1; }
tail -n 3 "$WORK/demo.log"

cp -r "$WORK/tree/catalogs" "$WORK/catalogs"
if [ -x "$DEV_PYTHON" ] && "$DEV_PYTHON" -c "import moto.server, s3fs" 2>/dev/null; then
    coproc SERVERS { exec "$DEV_PYTHON" "$ROOT/.ci/example_servers.py"; }
    SERVERS_IN=${SERVERS[1]}
    read -r -t 120 ENV_JSON <&"${SERVERS[0]}"
    eval "$(python3 -c 'import json,shlex,sys; print(" ".join(f"export {k}={shlex.quote(v)}" for k,v in json.loads(sys.argv[1]).items()))' "$ENV_JSON")"
else
    echo "no test venv at $DEV_PYTHON with moto: the S3 and MongoDB entries are skipped"
fi
"$WORK/tree/.venv/bin/python" "$ROOT/.ci/open_example_catalogs.py" "$WORK/catalogs"

# Everything a newcomer reads about, with command 1's venv alone (issue 23): the server started on
# a random loopback port answers; `apikey` makes a key; a demo run plots to a PNG (Agg); and plain
# xr.open_zarr reads a demo run's stream from the server's zarr URL.
VENV="$WORK/tree/.venv/bin"
export INTAKE_BROKER_DATA="$WORK/demo-data"
PORT=$("$VENV/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/intake-broker" serve --host 127.0.0.1 --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVE_PID=$!
stop_server() { kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; }
trap 'stop_server; cleanup' EXIT
"$VENV/python" - "$PORT" <<'PY' || { cat "$WORK/serve.log"; exit 1; }
import sys, time, httpx
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1"
for _ in range(300):
    try:
        r = httpx.get(url, timeout=2)
        break
    except httpx.TransportError:
        time.sleep(0.1)
else:
    sys.exit(f"intake-broker serve did not answer at {url} within 30 s")
r.raise_for_status()
print(f"serve: {url} answers {r.status_code}")
PY
"$VENV/intake-broker" apikey --keys "$WORK/apikeys.json" create ada > "$WORK/apikey.log" 2>&1 || { cat "$WORK/apikey.log"; exit 1; }
"$VENV/intake-broker" apikey --keys "$WORK/apikeys.json" list | grep -q ada || { echo "apikey list does not show the key made" >&2; exit 1; }
echo "apikey: created and listed a key"
"$VENV/python" - "$PORT" "$WORK/det.png" <<'PY'
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from intake_broker import default_catalog

port, png = sys.argv[1:]
run = default_catalog()[1]  # the demo's step scan
ds = run.primary.read()
ds["det"].plot()
plt.savefig(png)
assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", "no PNG written"
print(f"plot: {png}")
uid = run.metadata["start"]["uid"]
remote = xr.open_zarr(f"http://127.0.0.1:{port}/zarr/v3/runs/{uid}/primary", consolidated=False)
np.testing.assert_array_equal(remote["det"].values, ds["det"].values)
print(f"xr.open_zarr: {remote.sizes['time']} events of det equal to the local read")
PY

# The README's own blocks with command 1's venv alone, in order on the demo's runs; the blocks
# marked <!-- needs: ... --> (packages command 1 does not install; their sections name the extra)
# are skipped and listed (tests/test_readme.py runs them all in the test venv).
mkdir -p "$WORK/tour" && ln -s "$WORK/tree/catalogs" "$WORK/tour/catalogs"
(cd "$WORK/tour" && "$VENV/python" "$WORK/tree/tests/readme_blocks.py" --skip-needs "$WORK/tree/README.md")
