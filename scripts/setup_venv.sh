#!/usr/bin/env bash
# Create the project's virtual environment (.venv beside pyproject.toml) and install the project into it.
#
#   bash scripts/setup_venv.sh          # the project:                pip install -e .
#   bash scripts/setup_venv.sh test     # with the test extras:        pip install -e ".[test]"
#   bash scripts/setup_venv.sh test,bench
#
# Why a venv: a stock Debian or Ubuntu has `python3` but no `python`, and its system Python refuses
# `pip install` (EXTERNALLY-MANAGED, PEP 668). Only `python3` and its venv module are needed
# (Debian: apt-get install python3 python3-venv).
#
# An existing .venv is reused; pip runs again only when pyproject.toml or the extras asked for change
# (a stamp file inside the venv remembers what was installed). A .venv whose interpreter no longer runs
# (the system Python was upgraded or removed) is rebuilt.
#
# Environment: PYTHON (default python3) is the interpreter the venv is made from; RUSTYRAY_VENV (default
# <checkout>/.venv) is where it goes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
VENV="${RUSTYRAY_VENV:-$ROOT/.venv}"

say() { echo "setup_venv: $*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "no '$PYTHON' on PATH; install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$("$PYTHON" -V 2>&1) is too old: the project needs Python 3.11 or newer" >&2
    exit 1
fi

if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "$VENV is broken (its interpreter does not run); rebuilding it"
    rm -rf "$VENV"
fi
if [ ! -e "$VENV" ]; then
    say "creating $VENV with $("$PYTHON" -V 2>&1)"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        say "'$PYTHON -m venv' failed; on Debian or Ubuntu install the venv module: apt-get install python3-venv" >&2
        exit 1
    fi
fi

spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
# One stamp per set of extras, holding the hash of the pyproject.toml it was installed from. The bare
# project is also up to date when any set of extras was installed from this pyproject.toml.
tag="${EXTRAS:-base}"
STAMP="$VENV/.rustyray-installed-${tag//,/+}"
hash="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml)"
stamps=("$STAMP")
[ -z "$EXTRAS" ] && stamps+=("$VENV"/.rustyray-installed-*)
for stamp in "${stamps[@]}"; do
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
        say "$VENV is up to date (pip install -e \"$spec\" already done for this pyproject.toml)"
        exit 0
    fi
done

say "installing -e \"$spec\" into $VENV"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
echo "$hash" >"$STAMP"
say "done: $("$VENV/bin/python" -V 2>&1) in $VENV"
