#!/usr/bin/env bash
# The one-call GPU check (bench/gpu_check.py says what it runs), from the repository root:
#   on the lent device:  bash bench/gpu_check.sh             (the device call carries .whl/: docs/benchmarks.md)
#   here, on a CPU:      bash bench/gpu_check.sh --plan [--no-download]
# On the device it first installs the carried wheels into /tmp/site, exactly as the device README says, and puts
# them first on PYTHONPATH; the install's status and seconds go to the summary. --plan installs nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
case " $* " in
  *" --plan "*) exec "$PYTHON" bench/gpu_check.py "$@" ;;
esac
started=$(date +%s)
if compgen -G ".whl/*.whl" >/dev/null; then
  if timeout 120 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl; then
    export GPU_CHECK_INSTALL=ok PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_check.sh: pip install of .whl/ failed" >&2
    exit 1
  fi
else
  export GPU_CHECK_INSTALL="no .whl/ carried: the device's own packages"
fi
export GPU_CHECK_INSTALL_S=$(( $(date +%s) - started ))
exec "$PYTHON" bench/gpu_check.py "$@"
