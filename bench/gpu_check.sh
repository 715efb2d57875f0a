#!/usr/bin/env bash
# The GPU check (issue 40), in one call on a lent GPU machine: bench/gpu_check.sh [--dry-run] [--out DIR] ...
# Installs the wheels `make gpu-wheels` put in .whl/ (the machine can fetch nothing) when this Python is
# the 3.12 they were made for (GPU_CHECK_NO_WHEELS=1: never), then runs bench/gpu_check.py with the same
# arguments. Results go to --out, else $OUT, else ./gpu_check_out.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
fi
site=${GPU_CHECK_SITE:-/tmp/site}
if [ -z "${GPU_CHECK_NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$py" bench/gpu_check.py "$@"
