#!/usr/bin/env bash
# Idempotent set-up, sourced by scripts/run and scripts/test: a Python 3.11 venv (.venv) with MedLedger
# installed editable with its dev extras, and the npm-pinned toolchain (anvil, solc, OpenZeppelin; ethers for
# the wallet-compatibility test) in node_modules. Each step re-runs only when its lock input (pyproject.toml,
# package-lock.json) changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[2m[bootstrap] %s\033[0m\n' "$*" >&2; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

py=""
for cand in "${PYTHON:-}" python3.11 python3; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
  if "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || die "Python 3.11 is required (set PYTHON=/path/to/python3.11)"
command -v node >/dev/null 2>&1 || die "Node.js (>= 18) and npm are required for the pinned solc and anvil"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $py"
  "$py" -m venv .venv
fi
py_stamp=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat .venv/.medledger-stamp 2>/dev/null)" != "$py_stamp" ]; then
  say "installing Python packages (pip install -e .[dev])"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  echo "$py_stamp" > .venv/.medledger-stamp
fi

npm_stamp=$(cat package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat node_modules/.medledger-stamp 2>/dev/null)" != "$npm_stamp" ]; then
  say "installing the pinned npm toolchain (npm ci from package-lock.json)"
  # The lock lists every platform's Anvil package (npm installs only this platform's); `npm ci` installs
  # exactly the locked versions and fails if the lock does not match package.json.
  # Install scripts stay off: anvil's postinstall would download a binary that its platform package carries.
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$npm_stamp" > node_modules/.medledger-stamp
fi
