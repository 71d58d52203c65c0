#!/usr/bin/env bash
# The Python package's tests: builds the extension (debug profile, sharing the workspace's
# target/ with `cargo test`) into a venv under target/, then runs pytest against the CLI and
# `quiver serve` (which the tests start on free loopback ports) and Feast's own SDK.
# Usage: python/test.sh [pytest args...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=${QUIVER_PY_VENV:-$repo/target/python-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || {
    echo "python3 -m venv failed: install python3-venv (apt-get install -y python3-venv)" >&2
    exit 1
  }
fi
# Feast 0.67 for the interop test; pandas for DataFrames; maturin builds the wheel.
"$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements-test.txt
# The CLI the tests drive, built as `cargo test --workspace --all-features` builds it (the same
# feature resolution, dev-dependencies included), so after that command this builds nothing;
# `cargo build --bin quiver` would resolve features differently and rebuild DataFusion.
cargo test -q --workspace --all-features --locked --no-run
(cd python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop -q --locked)
cd python
QUIVER_BIN="$repo/target/debug/quiver" "$venv/bin/python" -m pytest -q "$@"
