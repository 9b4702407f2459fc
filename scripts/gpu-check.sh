#!/usr/bin/env bash
# The GPU check of the device path (issue #15), for a machine with an NVIDIA GPU and its driver.
# Nothing in this repository has run on a GPU until this script has passed there.
#
#   bash scripts/gpu-check.sh            # from a checkout; no network needed once npm ci has run
#
# It builds what it needs (TypeScript, the CUDA-IPC addon unless a prebuild loads), then, over the
# REAL driver (libcuda.so.1, never the stand-in):
#   1. the transport compliance suite with 2 processes on GPU 0, plus a device-to-device broadcast;
#   2. `hotweights replicate --device cuda --pinned` of a ~1 GB checkpoint to 2 ranks, verified
#      (every landed device byte copied back and hashed) and committed, files compared with cmp;
#   3. a device-to-device cuMemcpyDtoD on GPU 0 in the same run, as the reference rate;
#   4. where libnccl.so.2 is installed and there are 2 GPUs, the compliance suite over the real NCCL
#      and CUDA runtime with 2 processes (NCCL refuses two ranks on one GPU; its row then says
#      NOT RUN and why, as it does when NCCL is not installed);
# and prints one table. Any failure stops it with a non-zero exit and the step that failed; a
# machine without a GPU exits 2 with "no GPU" before doing anything. It never skips a step.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GB_BYTES=${GPU_CHECK_BYTES:-1073741824}

nogpu() {
  echo "gpu-check: no GPU: $1. This script validates the CUDA path on a machine with an NVIDIA GPU and driver; nothing was run." >&2
  exit 2
}
step=setup
fail() {
  echo "gpu-check: FAILED at step '$step': $*" >&2
  exit 1
}
trap 'rc=$?; [ $rc -eq 0 ] || [ $rc -eq 2 ] || echo "gpu-check: FAILED at step '"'"'$step'"'"' (exit $rc)" >&2' EXIT

# --- 0. Is there a GPU? (before anything is built or written) ---
command -v nvidia-smi >/dev/null 2>&1 || nogpu "nvidia-smi not found (no NVIDIA driver installed)"
nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || nogpu "nvidia-smi lists no GPU"
# The real driver, whatever the environment says (the stand-in is for tests without a GPU).
export HOTWEIGHTS_CUDA_LIBRARY=libcuda.so.1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hw-gpu-check.XXXXXX")
RDV=$(mktemp -d /dev/shm/hw-gpu-check.XXXXXX)
cleanup() { rm -rf "$WORK" "$RDV"; }
trap 'rc=$?; cleanup; [ $rc -eq 0 ] || echo "gpu-check: FAILED at step '"'"'$step'"'"' (exit $rc)" >&2' EXIT
export HOTWEIGHTS_STATE_DIR="$WORK/state" HOTWEIGHTS_STAGING_DIR="$RDV" HOTWEIGHTS_SOURCE_ROOTS="$WORK"
NODE_SRC=(node --conditions=@hotweights/source --import tsx)
HW=(node "$ROOT/packages/cli/dist/bin.js")
cd "$ROOT"

# --- 1. Build ---
step=build
if [ ! -d node_modules ]; then
  npm ci --offline --no-audit --no-fund || fail "npm ci --offline needs a populated npm cache (run npm ci once with network)"
fi
npx tsc -b tsconfig.build.json || fail "TypeScript build"
addon_loads() { node -e "import('$ROOT/packages/transport-cuda-ipc/dist/native.js').then(m => process.exit(m.loadNative().native ? 0 : 1))"; }
if ! addon_loads; then
  [ -f /usr/include/node/node.h ] && export npm_config_nodedir=/usr
  (cd packages/transport-cuda-ipc && npx node-gyp rebuild >"$WORK/node-gyp.log" 2>&1) ||
    fail "building the CUDA-IPC addon (see the log below)
$(tail -20 "$WORK/node-gyp.log")"
  addon_loads || fail "the CUDA-IPC addon does not load after building it"
fi

# --- 2. Probe the real driver ---
step=probe
probe=$("${HW[@]}" transports --json) || fail "hotweights transports"
node -e '
  const r = JSON.parse(process.argv[1]).transports.find((t) => t.name === "cuda-ipc");
  if (!r) { console.error("cuda-ipc is not discovered"); process.exit(1); }
  if (!r.available) { console.error("cuda-ipc unavailable over the real driver: " + r.reason); process.exit(1); }
  console.log("cuda-ipc: " + r.detail);
' "$probe" || fail "the CUDA-IPC transport is not available over libcuda.so.1"

# --- 3. Compliance, 2 processes on GPU 0 ---
step="compliance (2 processes, GPU 0)"
pids=()
for r in 0 1; do
  HOTWEIGHTS_CUDA_DEVICE=0 timeout 300 "${NODE_SRC[@]}" packages/transport-cuda-ipc/test/fixtures/cuda-compliance-rank.ts \
    "$RDV" "$r" 2 >"$WORK/compliance.$r.out" 2>"$WORK/compliance.$r.err" &
  pids+=($!)
done
for i in 0 1; do
  wait "${pids[$i]}" || fail "rank $i: $(cat "$WORK/compliance.$i.out" "$WORK/compliance.$i.err")"
done
compliance=$(node -e '
  const fs = require("fs");
  let passed = 0, bytes = 0;
  for (const r of [0, 1]) {
    const o = JSON.parse(fs.readFileSync(process.argv[1] + "/compliance." + r + ".out", "utf8"));
    if (o.error) { console.error("rank " + r + ": " + o.error); process.exit(1); }
    passed = o.passed; bytes = o.deviceBytes;
  }
  console.log(passed + " " + bytes);
' "$WORK") || fail "compliance report"
read -r compliance_checks compliance_bytes <<<"$compliance"

# --- 4. A ~1 GB checkpoint, replicated device to device, verified, committed ---
step="replicate --device cuda (~1 GB)"
mkdir -p "$WORK/ckpt"
shard=$((GB_BYTES / 4))
for i in 0 1 2 3; do head -c "$shard" /dev/urandom >"$WORK/ckpt/shard-$i.bin"; done
"${HW[@]}" publish --checkpoint "$WORK/ckpt" --version gpu-check --output "$WORK/next.manifest.json" --format json >"$WORK/publish.log" 2>&1 ||
  fail "publish: $(cat "$WORK/publish.log")"
"${HW[@]}" plan --next "$WORK/next.manifest.json" --world-size 2 --bucket-mb 64 --output "$WORK/plan.json" >"$WORK/plan.log" 2>&1 ||
  fail "plan: $(cat "$WORK/plan.log")"
timeout 600 "${HW[@]}" replicate --plan "$WORK/plan.json" --device cuda --pinned --world-size 2 \
  --target "$WORK/target" --commit --json --no-metrics >"$WORK/replicate.json" ||
  fail "replicate: $(cat "$WORK/replicate.json")"
for r in 0 1; do
  for i in 0 1 2 3; do
    cmp -s "$WORK/ckpt/shard-$i.bin" "$WORK/target/rank-$r/current/shard-$i.bin" ||
      fail "rank $r: shard-$i.bin differs from the checkpoint after commit"
  done
done
read -r rep_bytes rep_gbps rep_items < <(node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!s.committed) { console.error("not committed"); process.exit(1); }
  console.log(s.bytes_planned, s.throughput_gbps.toFixed(2), s.items_verified);
' "$WORK/replicate.json") || fail "replicate summary"

# --- 5. Reference: cuMemcpyDtoD on GPU 0, same run ---
step="reference cuMemcpyDtoD"
ref_gbps=$(node --input-type=module -e "
  import { loadConfig } from '$ROOT/packages/core/dist/index.js';
  import { CudaDevice } from '$ROOT/packages/transport-cuda-ipc/dist/index.js';
  const dev = CudaDevice.open(loadConfig({ ...process.env, HOTWEIGHTS_CUDA_DEVICE: '0' }), 0);
  const n = 256 * 2 ** 20;
  const a = dev.alloc(n, 'reference source'), b = dev.alloc(n, 'reference destination');
  await dev.copyDevice(b, a, n); // warm-up
  let ms = 0;
  for (let i = 0; i < 10; i++) ms += await dev.copyDevice(b, a, n);
  dev.free(a); dev.free(b);
  console.log(((10 * n) / (ms / 1000) / 1e9).toFixed(2));
") || fail "reference copy"

# --- 6. NCCL over the real libraries, where present ---
step="nccl compliance (2 processes, 2 GPUs)"
gpus=$(nvidia-smi -L | grep -c '^GPU ')
nccl_port=$((29500 + RANDOM % 2000))
nccl_probe=$(RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$nccl_port "${HW[@]}" transports --json) ||
  fail "hotweights transports (nccl)"
nccl_reason=$(node -e '
  const r = JSON.parse(process.argv[1]).transports.find((t) => t.name === "nccl");
  console.log(!r ? "the nccl transport is not installed" : r.available ? "" : r.reason);
' "$nccl_probe")
if [ -n "$nccl_reason" ]; then
  nccl_result="NOT RUN"
  nccl_note="$nccl_reason"
elif [ "$gpus" -lt 2 ]; then
  nccl_result="NOT RUN"
  nccl_note="NCCL refuses two ranks on one GPU; this machine has $gpus"
else
  pids=()
  for r in 0 1; do
    (cd packages/transport-nccl && RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$nccl_port \
      timeout 300 "${NODE_SRC[@]}" test/fixtures/compliance-rank.ts) >"$WORK/nccl.$r.out" 2>"$WORK/nccl.$r.err" &
    pids+=($!)
  done
  for i in 0 1; do
    wait "${pids[$i]}" || fail "nccl rank $i: $(cat "$WORK/nccl.$i.out" "$WORK/nccl.$i.err")"
  done
  nccl_note=$(node -e '
    const fs = require("fs");
    let passed = 0;
    for (const r of [0, 1]) {
      const o = JSON.parse(fs.readFileSync(process.argv[1] + "/nccl." + r + ".out", "utf8").trim().split("\n").pop());
      if (o.failures.length) { console.error("rank " + r + ": " + JSON.stringify(o.failures)); process.exit(1); }
      passed = o.passed.length;
    }
    console.log(passed + " checks");
  ' "$WORK") || fail "nccl compliance report"
  nccl_result=PASS
fi

step=report
ratio=$(node -e 'console.log((Number(process.argv[1]) / Number(process.argv[2])).toFixed(3))' "$rep_gbps" "$ref_gbps")
printf '\n%-46s %-6s %14s %10s %22s\n' "check (real libcuda.so.1)" result bytes "GB/s" "cuMemcpyDtoD GB/s"
printf '%-46s %-6s %14s %10s %22s\n' "compliance ($compliance_checks checks), 2 procs, GPU 0" PASS "$compliance_bytes" - -
printf '%-46s %-6s %14s %10s %22s\n' "replicate --device cuda, verified + committed" PASS "$rep_bytes" "$rep_gbps" "$ref_gbps"
printf '%-46s %-6s %s\n' "nccl compliance, 2 procs on 2 GPUs" "$nccl_result" "$nccl_note"
printf '\nreplicate / device-to-device memcpy: %s (%s items verified on 2 ranks)\n' "$ratio" "$rep_items"
step=done
