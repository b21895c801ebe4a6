#!/usr/bin/env bash
# The Python package in CI: installs it with `pip install .` (PEP 517 through maturin, only
# PyPI and crates.io), then runs its tests (python/tests) against the bundled Hyper-V sample and
# synthetic inputs written by the Rust reader's examples, with volatility3 2.28.2.
# Usage: scripts/python-ci.sh   (from anywhere; uses $CARGO_TARGET_DIR or target/)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
venv="$target/py-venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check maturin==1.9.6 pytest==9.2.0 \
    volatility3==2.28.2

# The way users install it: a PEP 517 build of the repository root (pyproject.toml).
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps .
wheel_check=$("$venv/bin/python" -c 'import pathlib, volatility3, vm2dmp; print(vm2dmp.__version__, (pathlib.Path(volatility3.__file__).parent / "plugins" / "vm2dmp_layer.py").is_file())')
case "$wheel_check" in
    *True) ;;
    *) echo "python-ci: the volatility3 plugins shim was not installed ($wheel_check)" >&2; exit 1 ;;
esac

# Synthetic inputs and the manifest of every page as the Rust reader reads it.
synth="$target/py-synth"
if [ ! -f "$synth/manifest.json" ]; then
    cargo run --quiet -p vm2dmp --example make_check_dumps -- "$synth"
fi
# Windows-like guests whose kernel vm2dmp finds (the layer's metadata for volatility3).
windows="$target/py-windows-guests"
if [ ! -f "$windows/truth.json" ]; then
    cargo run --quiet -p vm2dmp-python --example make_windows_guests -- "$windows"
fi
# The `vm2dmp info --json` the summary is compared with.
cargo build --quiet -p vm2dmp-cli

VM2DMP_SYNTH_DIR="$synth" VM2DMP_WINDOWS_GUESTS_DIR="$windows" CARGO_TARGET_DIR="$target" \
    "$venv/bin/python" -m pytest -q python/tests
