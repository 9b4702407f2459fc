#!/usr/bin/env bash
# Debian packages the test suite runs for real: Open MPI (mpirun, libmpi), UCX, redis-server,
# Python's venv for the vLLM worker-extension tests, Prometheus (with promtool) for the dashboard
# and alert-rule tests, iproute2 (ip, tc) for the network-namespace hosts of the UCX multi-host
# tests, and b3sum (the reference BLAKE3 the publish benchmark measures against). Installs only
# what is missing.
set -euo pipefail
packages=(openmpi-bin libopenmpi-dev libucx-dev ucx-utils redis-server python3-venv prometheus iproute2 b3sum)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run this script as root, or install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
