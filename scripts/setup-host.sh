#!/usr/bin/env bash
# Install what leapfrog needs on a Debian/Ubuntu host.  Re-runnable: every step
# checks first, and says what it changes.
#   scripts/setup-host.sh                   everything (profile "full"): host packages, binfmt,
#                                           dockerd, pip install -e .[dev,baseline] with torch (CPU)
#   scripts/setup-host.sh --profile chroot  only what chroot targets need: no docker, qemu-system,
#                                           chromium, nor the native AI baseline (torch, onnxruntime...)
#   LEAPFROG_SETUP_PROFILE=chroot scripts/setup-host.sh   the same
# The Debian packages come from harness/hostreq.py, the table `leapfrog doctor` checks.
# Python packages go where pip may write: the interpreter's own site-packages, or
# a venv at .venv when the system Python is "externally managed" (PEP 668, as on
# Debian 12) or has no pip.  constraints/baseline.txt pins their versions.
# Needs Python >= 3.11 (PYTHON=/path/to/python3 picks another one).
# Runs as root, or re-runs itself with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${LEAPFROG_SETUP_PROFILE:-full}
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --profile=*) profile=${1#--profile=}; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument \"$1\"; usage: scripts/setup-host.sh [--profile chroot|full]" >&2; exit 2 ;;
  esac
done
case "$profile" in
  chroot | full) ;;
  *) echo "setup: unknown profile \"$profile\"; use --profile chroot or --profile full" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" --profile "$profile"
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=
apt_install() {  # the packages among "$@" that are not installed yet
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "setup: apt-get install ${missing[*]}"
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A Python to read the table with (a minimal Debian has none).
SYS_PY=${PYTHON:-python3}
if ! command -v "$SYS_PY" >/dev/null; then
  apt_install python3
fi
if ! "$SYS_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: leapfrog needs Python >= 3.11, and $SYS_PY is $("$SYS_PY" -V 2>&1);" \
    "install a newer one and run again with PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# Host packages: the table's, plus CA certificates for pip's downloads.
packages=$("$SYS_PY" -m harness.hostreq apt --profile "$profile")
# shellcheck disable=SC2086  # one package a line: split on purpose
apt_install ca-certificates $packages

# binfmt: riscv64 binaries run through qemu-user (F flag: works inside chroots and containers).
# Left alone when an entry is already registered (by this host, or by the host of this chroot).
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  echo "setup: mounting binfmt_misc on /proc/sys/fs/binfmt_misc"
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-riscv64 ]; then
  echo "setup: registering qemu-riscv64 with binfmt_misc (update-binfmts)"
  update-binfmts --enable qemu-riscv64 || update-binfmts --import qemu-riscv64
fi

# A Docker engine for docker targets (started in the background when none answers).
if [ "$profile" = full ] && ! docker version >/dev/null 2>&1 && command -v dockerd >/dev/null; then
  echo "setup: starting dockerd (log: /var/log/leapfrog-dockerd.log)"
  (dockerd >/var/log/leapfrog-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
fi

# Where Python packages go.
externally_managed() {
  "$SYS_PY" -c 'import os, sys, sysconfig
sys.exit(0 if sys.prefix == sys.base_prefix
         and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'
}
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
elif "$SYS_PY" -m pip --version >/dev/null 2>&1 && ! externally_managed; then
  PY=$SYS_PY
else
  if ! "$SYS_PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  echo "setup: creating a venv at .venv ($SYS_PY is externally managed or has no pip); leapfrog is .venv/bin/leapfrog"
  "$SYS_PY" -m venv .venv
  PY=.venv/bin/python
fi

pip_install() {  # pinned by constraints/baseline.txt; stops the setup on failure
  echo "setup: pip install $*"
  if ! "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    -c constraints/baseline.txt "$@"; then
    echo "setup: \`$PY -m pip install $*\` failed; see pip's output above" >&2
    exit 1
  fi
}

if [ "$profile" = full ]; then
  # The native baseline needs torch: take a CPU build. Plain `pip install torch`
  # would fetch a CUDA build of several GB.
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    if ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
      pip_install /opt/wheels/torch-*+cpu-*.whl
    else
      pip_install torch --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
  pip_install -e '.[dev,baseline]'
  imports="harness, numpy, onnxruntime, sklearn, torch, mlperf_loadgen"
else
  pip_install -e .
  imports="harness, click, pytest"
fi
"$PY" -c "import $imports" \
  || { echo "setup: the Python packages did not install ($imports); see the pip output above" >&2; exit 1; }
echo "setup: done, profile $profile ($("$PY" -m harness.cli --version 2>/dev/null || echo leapfrog) in $PY)"
