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
