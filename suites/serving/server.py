#!/usr/bin/env python3
"""The model server the serving suite starts INSIDE the target (FastAPI + uvicorn).

It serves two small models built by ``make_golden.py``:

``mlp``      an ONNX graph (Gemm/Relu/Tanh) run by ONNX Runtime
``convnet``  a 1-D convolution network run by PyTorch, built here from the
             weights in ``convnet.npz`` (plain arrays, so no pickle and no
             TorchScript format crosses torch versions)

Endpoints (JSON in and out)::

    GET  /health                      {"status": "ok", "models": {name: {"ok": ..., ...}}, ...}
    POST /v1/models/{name}/infer      {"inputs": [[64 floats], ...]} -> {"outputs": [[10 floats], ...]}
    POST /v1/echo                     {"inputs": [[...], ...]} -> {"outputs": the same rows}

``/v1/echo`` goes through the same HTTP, parsing and serialising path with no
model, so the host can measure what the load generator and the HTTP stack
alone can drive.  A model whose runtime cannot be imported is reported as not
ok by ``/health``; the other model is still served.

Run as::

    python3 server.py --host 127.0.0.1 --port 0 --models DIR --pid-file F --port-file P

The pid is written first thing (before the slow imports), so the host can stop
the server at any point with ``kill``; the port (any free one with ``--port 0``)
is written once the models are loaded and the socket listens.  After
``--max-lifetime`` seconds the server exits by itself, whatever the host did.  Runs on the target's Python (3.9+).  No
``from __future__ import annotations`` here: FastAPI reads the endpoint
annotations at run time, and the request model is local to ``make_app``.
"""

import argparse
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INPUT_DIM = 64
OUTPUT_DIM = 10
CONV_CHANNELS = 8
CONV_KERNEL = 5
CONV_POOL = 8
MODEL_NAMES = ("mlp", "convnet")


def build_convnet(weights: dict[str, Any]) -> Any:
    """The PyTorch model behind ``convnet``: Conv1d-ReLU-Conv1d-ReLU-AvgPool-Linear.

    ``weights`` maps parameter names (``conv1.weight`` ...) to numpy arrays.
    ``make_golden.py`` builds the same network to write the golden outputs.
    """
    import torch

    class ConvNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            pad = CONV_KERNEL // 2
            self.conv1 = torch.nn.Conv1d(1, CONV_CHANNELS, CONV_KERNEL, padding=pad)
            self.conv2 = torch.nn.Conv1d(CONV_CHANNELS, CONV_CHANNELS, CONV_KERNEL, padding=pad)
            self.pool = torch.nn.AvgPool1d(CONV_POOL)
            self.fc = torch.nn.Linear(CONV_CHANNELS * INPUT_DIM // CONV_POOL, OUTPUT_DIM)

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.conv1(x.unsqueeze(1)))
            h = torch.relu(self.conv2(h))
            return self.fc(self.pool(h).flatten(1))

    net = ConvNet()
    state = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    net.load_state_dict(state, strict=True)
    return net.eval()


Runner = Callable[[Any], Any]  # float32 array [N, INPUT_DIM] -> float32 array [N, OUTPUT_DIM]


def load_mlp(folder: Path, threads: int) -> tuple[Runner, str]:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "mlp.onnx"), opts, providers=["CPUExecutionProvider"])

    def run(x: Any) -> Any:
        return np.asarray(session.run(["logits"], {"x": x})[0], dtype=np.float32)

    return run, "onnxruntime " + ort.__version__


def load_convnet(folder: Path, threads: int) -> tuple[Runner, str]:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    with np.load(folder / "convnet.npz", allow_pickle=False) as data:
        net = build_convnet({k: data[k] for k in data.files})

    def run(x: Any) -> Any:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy().astype(np.float32, copy=False)

    return run, "torch " + torch.__version__


LOADERS = {"mlp": load_mlp, "convnet": load_convnet}


def load_models(folder: Path, threads: int) -> tuple[dict[str, Runner], dict[str, dict[str, Any]]]:
    """Load every model; one that fails is reported in the status, not fatal."""
    runners: dict[str, Runner] = {}
    status: dict[str, dict[str, Any]] = {}
    for name in MODEL_NAMES:
        start = time.monotonic()
        try:
            runners[name], runtime = LOADERS[name](folder, threads)
        except Exception as e:  # an unimportable runtime is a finding the host reports
            status[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(f"model {name} failed to load: {e!r}", file=sys.stderr, flush=True)
            continue
        status[name] = {"ok": True, "runtime": runtime, "load_s": round(time.monotonic() - start, 3)}
    return runners, status


def make_app(runners: dict[str, Runner], status: dict[str, dict[str, Any]]) -> Any:
    import numpy as np
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    class Rows(BaseModel):
        inputs: list[list[float]]

    app = FastAPI(title="leapfrog serving suite")
    started = time.time()

    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "models": status,
                "pid": os.getpid(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "uptime_s": round(time.time() - started, 3),
            }
        )

    @app.post("/v1/echo")
    def echo(body: Rows) -> JSONResponse:
        return JSONResponse({"outputs": body.inputs})

    @app.post("/v1/models/{name}/infer")
    def infer(name: str, body: Rows) -> JSONResponse:
        run = runners.get(name)
        if run is None:
            why = status.get(name, {}).get("error", "no such model")
            raise HTTPException(status_code=404, detail=f"model {name} is not served: {why}")
        x = np.asarray(body.inputs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != INPUT_DIM or x.shape[0] == 0:
            raise HTTPException(status_code=400, detail=f"inputs must be [N, {INPUT_DIM}] with N >= 1")
        y = run(x)
        return JSONResponse({"model": name, "outputs": y.tolist()})

    return app


def listen(host: str, port: int) -> socket.socket:
    """Bind before uvicorn does, so port 0 (any free port) can be read back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns on TCP_NODELAY only for sockets that do, and
    # without it each response (headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description="leapfrog serving suite: model server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (written to --port-file)")
    ap.add_argument("--models", type=Path, required=True, help="folder with mlp.onnx and convnet.npz")
    ap.add_argument("--pid-file", type=Path, required=True, help="written first, before the slow imports")
    ap.add_argument(
        "--port-file", type=Path, required=True, help="written once models are loaded and the port is bound"
    )
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per runtime")
    ap.add_argument("--max-lifetime", type=float, default=3600.0, help="seconds; then the server stops by itself")
    args = ap.parse_args()
    write_atomic(args.pid_file, str(os.getpid()))
    # A safety net if the host side vanishes without stopping us: leave by ourselves.
    quit_timer = threading.Timer(args.max_lifetime, os._exit, args=(3,))
    quit_timer.daemon = True
    quit_timer.start()
    start = time.monotonic()
    runners, status = load_models(args.models, args.threads)
    app = make_app(runners, status)
    import uvicorn

    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    print(
        f"models loaded in {time.monotonic() - start:.1f} s: {status}; listening on {args.host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    write_atomic(args.port_file, str(port))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
