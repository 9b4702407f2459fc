"""A TEST DOUBLE of vLLM's HTTP surface, not vLLM: the dev-mode endpoints the hotweights adapter
calls, with vLLM's paths and payloads, over workers that run the real hotweights_vllm extension
on a tiny vLLM-shaped Llama (one in-process worker per tensor-parallel rank). No inference.

    python vllm_stand_in.py --port N --tp 2

The dev-mode endpoints exist only with VLLM_SERVER_DEV_MODE=1, as in vLLM. Routes under
/standin/ are for the tests (fault injection, digests of what the workers hold).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import uvicorn
from fastapi import Body, FastAPI, Query
from fastapi.responses import JSONResponse

PYTHON = Path(__file__).resolve().parents[2] / "python"
sys.path[:0] = [str(PYTHON / "src"), str(PYTHON / "tests")]


class Workers:
    """The engine side: one extension-carrying worker per TP rank."""

    def __init__(self, tp: int, sizes: dict[str, int]) -> None:
        from vllm_double import TinyVllmLlama, make_worker, tiny_config

        from hotweights_vllm import HotweightsWorkerExtension

        self.workers = [make_worker(HotweightsWorkerExtension, TinyVllmLlama(tiny_config(**sizes), r, tp), r, tp)
                        for r in range(tp)]
        self.faults: dict[str, Optional[dict[str, Any]]] = {"fail": None, "hang": None}
        self.release_hang = threading.Event()

    def call(self, method: str, args: list[str], kwargs: dict[str, str]) -> list[Any]:
        """Every worker runs the method; like vLLM, one worker's exception fails the whole call."""
        results: list[Any] = []
        errors: list[str] = []
        for w in self.workers:
            try:
                if self._matches("hang", method, w.rank):
                    self.release_hang.wait(120)
                    raise RuntimeError(f"rank {w.rank} was hung in {method} and gave up")
                if self._matches("fail", method, w.rank):
                    raise RuntimeError(f"injected failure of {method} on rank {w.rank}")
                results.append(getattr(w, method)(*args, **kwargs))
            except Exception as err:  # noqa: BLE001 - reported to the caller like vLLM's RPC error
                errors.append(f"rank {w.rank}: {err}")
        if errors:
            raise RuntimeError("; ".join(errors))
        return results

    def _matches(self, kind: str, method: str, rank: int) -> bool:
        f = self.faults[kind]
        return f is not None and f.get("method") == method and f.get("rank") == rank

    def held(self) -> dict[str, bytes]:
        """The checkpoint the TP workers hold together: every tensor's bytes, by Hugging Face name."""
        import torch
        from vllm_double import gather

        held = gather([w.model_runner.model for w in self.workers])
        return {n: t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() for n, t in held.items()}

    def digests(self) -> dict[str, str]:
        return {n: hashlib.sha256(b).hexdigest() for n, b in self.held().items()}


def build(tp: int, sizes: dict[str, int]) -> FastAPI:
    app = FastAPI()
    dev = os.environ.get("VLLM_SERVER_DEV_MODE") == "1"
    state: dict[str, Any] = {"paused": False, "weight_version": None, "calls": [], "paused_at": None,
                             "pauses": []}
    workers = Workers(tp, sizes) if dev else None

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({})

    if workers is None:
        return app

    def log(what: str) -> None:
        state["calls"].append(what)

    @app.post("/collective_rpc")
    async def collective_rpc(body: dict[str, Any] = Body(...)) -> JSONResponse:
        method = body.get("method")
        if method is None:
            return JSONResponse({"detail": "Missing 'method' in request body"}, status_code=400)
        log(method)
        work = asyncio.to_thread(workers.call, method, list(body.get("args", [])), dict(body.get("kwargs", {})))
        try:
            results = await asyncio.wait_for(work, body.get("timeout"))
        except asyncio.TimeoutError:
            return JSONResponse({"error": f"TimeoutError: {method} did not finish in {body.get('timeout')} s"},
                                status_code=500)
        except Exception as err:  # noqa: BLE001
            return JSONResponse({"error": str(err)}, status_code=500)
        return JSONResponse({"results": [r if r is None or isinstance(r, (dict, list)) else str(r)
                                         for r in results]})

    @app.post("/pause")
    async def pause(mode: str = Query("abort")) -> JSONResponse:
        if mode not in ("abort", "wait", "keep"):
            return JSONResponse({"error": f"bad mode {mode}"}, status_code=400)
        log(f"pause:{mode}")
        state["paused"] = True
        state["paused_at"] = time.perf_counter()
        return JSONResponse({"status": "paused"})

    @app.post("/resume")
    async def resume() -> JSONResponse:
        log("resume")
        state["paused"] = False
        if state["paused_at"] is not None:
            state["pauses"].append(time.perf_counter() - state["paused_at"])
            state["paused_at"] = None
        return JSONResponse({"status": "resumed"})

    @app.get("/is_paused")
    async def is_paused() -> JSONResponse:
        return JSONResponse({"is_paused": state["paused"]})

    @app.post("/reset_prefix_cache")
    async def reset_prefix_cache() -> JSONResponse:
        log("reset_prefix_cache")
        return JSONResponse({})

    @app.post("/update_weight_version")
    async def update_weight_version(new_version: str = Body(..., embed=True)) -> JSONResponse:
        log(f"update_weight_version:{new_version}")
        state["weight_version"] = new_version
        return JSONResponse({"success": True, "new_version": new_version})

    @app.get("/weight_info")
    async def weight_info() -> JSONResponse:
        return JSONResponse({"weight_version": state["weight_version"]})

    @app.post("/standin/faults")
    async def faults(body: dict[str, Any] = Body(...)) -> JSONResponse:
        workers.faults = {"fail": body.get("fail"), "hang": body.get("hang")}
        if workers.faults["hang"] is None:
            workers.release_hang.set()
        else:
            workers.release_hang.clear()
        return JSONResponse(workers.faults)

    @app.get("/standin/calls")
    async def calls() -> JSONResponse:
        return JSONResponse(state["calls"])

    @app.get("/standin/pauses")
    async def pauses() -> JSONResponse:
        """Seconds from each /pause to the /resume after it, as this server saw them."""
        return JSONResponse(state["pauses"])

    @app.get("/standin/tensors")
    async def tensors() -> JSONResponse:
        """What a request would be served with: like vLLM, nothing is answered while paused."""
        while state["paused"]:
            await asyncio.sleep(0.005)
        held = await asyncio.to_thread(workers.held)
        return JSONResponse({"weight_version": state["weight_version"],
                             "tensors": {n: base64.b64encode(b).decode() for n, b in held.items()}})

    @app.get("/standin/digests")
    async def digests() -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(workers.digests))

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--sizes", default="{}", help="LlamaConfig size overrides as JSON (benchmark)")
    a = parser.parse_args()
    uvicorn.run(build(a.tp, json.loads(a.sizes)), host="127.0.0.1", port=a.port, log_level="warning")
