#!/usr/bin/env bash
# Install what leapfrog needs on a Debian/Ubuntu host, idempotently.
#   scripts/setup-host.sh          host packages, binfmt, dockerd, pip install -e .[dev]
# Runs as root, or re-runs itself with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi

APT_PACKAGES=(
  qemu-user-static binfmt-support mmdebstrap          # chroot targets
  docker.io                                           # docker targets
  qemu-system-misc qemu-utils opensbi u-boot-qemu e2fsprogs openssh-client  # qemu-vm targets
  chromium                                            # the report's browser test
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# binfmt: riscv64 binaries run through qemu-user (F flag: works inside chroots and containers).
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-riscv64 ]; then
  update-binfmts --enable qemu-riscv64 || update-binfmts --import qemu-riscv64
fi

# A Docker engine for docker targets (started in the background when none answers).
if ! docker version >/dev/null 2>&1; then
  if command -v dockerd >/dev/null; then
    echo "setup: starting dockerd"
    (dockerd >/var/log/leapfrog-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
  fi
fi

PY=${PYTHON:-python3}
pip_quiet() {
  "$PY" -m pip install -q "$@" 2>&1 | grep -v -e "^WARNING: Location" -e "Running pip as the 'root'" || true
}
# The native baseline needs torch: take a CPU build. Plain `pip install torch`
# would fetch a CUDA build of several GB.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
    pip_quiet /opt/wheels/torch-*+cpu-*.whl
  else
    pip_quiet torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
pip_quiet -e '.[dev,baseline]'
"$PY" -c "import harness, numpy, onnxruntime, sklearn, torch, mlperf_loadgen" \
  || { echo "setup: the Python packages did not install; see the pip output above" >&2; exit 1; }
echo "setup: done ($("$PY" -m harness.cli --version 2>/dev/null || echo leapfrog))"
