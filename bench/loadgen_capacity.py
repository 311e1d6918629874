"""Is the load generator ever the bottleneck?  Native to native, what the host side can drive.

Starts the serving suite's server on the host (the native target) and measures,
each as a LoadGen Offline run with one sample per HTTP request and the suite's
thread pool on the host:

``loadgen_null_qps``  LoadGen and the SUT's thread pool alone (the handler answers at once)
``echo_qps``          the whole host side through HTTP against ``/v1/echo`` (no model)
``model_qps``         the same requests against each model (what the model server reaches)

``echo_qps`` is a lower bound of what the host side drives: the native echo
server shares the host's cores with it.  With ``--results`` (a leapfrog
``results.json`` of the serving suite) each other target's highest request rate
(SingleStream and Server queries, Offline batches) is set against ``echo_qps``:
a ``headroom`` well above 1 means the load generator never limited that target.
Prints one JSON line (and appends it to bench/results.jsonl).

    python3 bench/loadgen_capacity.py [--seconds 3] [--workers 8] [--results reports/X/results.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import ROOT
from harness.config import load_project
from harness.loadgen import (
    JsonClient,
    ScenarioSettings,
    TargetService,
    golden_mismatch,
    run_scenario,
    wait_until,
)
from harness.targets import make_target

SUITE = ROOT / "suites" / "serving"
Handler = Callable[[Sequence[int]], list[str | None]]


def rate(handler: Handler, samples: int, workers: int, seconds: float) -> float:
    """Requests per second with ``workers`` requests in flight, for about ``seconds``."""
    done, start = 0, time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        while time.perf_counter() - start < seconds:
            list(pool.map(lambda i: handler([i % samples]), range(done, done + workers * 4)))
            done += workers * 4
    return done / (time.perf_counter() - start)


def offline_qps(handler: Handler, samples: int, workers: int, seconds: float, logs: Path) -> tuple[float, int]:
    """LoadGen Offline, one sample per request: (samples per second, wrong answers)."""
    expected = rate(handler, samples, workers, 0.5) * 1.2
    scenario = ScenarioSettings(
        "Offline", int(seconds * 1000), 64, expected_qps=expected, batch_size=1, workers=workers
    )
    result = run_scenario(scenario, samples, handler, logs)
    return (result.summary.qps or 0.0), result.errors


def target_request_rates(results: Path) -> dict[str, float]:
    """Per non-native target, the most HTTP requests per second its serving cell sustained."""
    run = json.loads(results.read_text())
    rates: dict[str, float] = {}
    for cell in run["cells"]:
        if cell["suite"] != "serving" or cell["target"] == run.get("baseline"):
            continue
        m: dict[str, float] = {}
        for case in cell["cases"]:
            m.update({k: v for k, v in case["metrics"].items() if isinstance(v, int | float)})
        per_model = [
            max(
                m.get(f"{name}_single_stream_qps", 0.0),
                m.get(f"{name}_server_qps", 0.0),
                m.get(f"{name}_offline_qps", 0.0) / max(m.get(f"{name}_offline_batch_size", 1.0), 1.0),
            )
            for name in ("mlp", "convnet")
        ]
        rates[cell["target"]] = round(max(per_model), 1)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum duration of each LoadGen run")
    ap.add_argument("--workers", type=int, default=8, help="host threads carrying requests (as the suite)")
    ap.add_argument("--results", type=Path, help="a serving run's results.json to compare its targets with")
    args = ap.parse_args()

    with np.load(SUITE / "golden" / "serving.npz", allow_pickle=False) as data:
        golden = {k: data[k] for k in data.files}
    inputs = golden.pop("inputs")
    atol = float(json.loads((SUITE / "golden" / "meta.json").read_text())["atol"])
    n = len(inputs)

    target = make_target(load_project(ROOT).targets["native"])
    work = Path(tempfile.mkdtemp(prefix="leapfrog-capacity-"))
    argv = [
        target.config.python,
        str(SUITE / "server.py"),
        "--port",
        "0",
        "--models",
        str(SUITE / "models"),
        "--pid-file",
        str(work / "pid"),
        "--port-file",
        str(work / "port"),
        "--max-lifetime",
        "900",
    ]
    service = TargetService(target, argv, pid_file=str(work / "pid"), timeout=960)
    service.start()
    try:
        port = int(wait_until(service, lambda: service.read(str(work / "port")), timeout=120, what="listening"))
        client = JsonClient(f"http://127.0.0.1:{port}", connections=args.workers)
        wait_until(service, lambda: client.reachable("/health"), timeout=60, what="healthy", poll=0.2)

        def null(indices: Sequence[int]) -> list[str | None]:
            return [None] * len(indices)

        def echo(indices: Sequence[int]) -> list[str | None]:
            rows = inputs[list(indices)]
            got = client.post("/v1/echo", {"inputs": rows.tolist()})["outputs"]
            return [golden_mismatch(got, rows, 0.0)] * len(indices)

        def model(name: str) -> Handler:
            def handler(indices: Sequence[int]) -> list[str | None]:
                got = client.post(f"/v1/models/{name}/infer", {"inputs": inputs[list(indices)].tolist()})["outputs"]
                return [golden_mismatch(got, golden[name][list(indices)], atol)] * len(indices)

            return handler

        line: dict[str, object] = {"bench": "loadgen_capacity", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        errors = 0
        qps, bad = offline_qps(null, n, args.workers, args.seconds, work / "null")
        line["loadgen_null_qps"] = round(qps, 1)
        errors += bad
        echo_qps, bad = offline_qps(echo, n, args.workers, args.seconds, work / "echo")
        line["echo_qps"] = round(echo_qps, 1)
        errors += bad
        models: dict[str, float] = {}
        for name in sorted(golden):
            qps, bad = offline_qps(model(name), n, args.workers, args.seconds, work / name)
            models[name] = round(qps, 1)
            errors += bad
        line["model_qps"] = models
        line["echo_over_slowest_model"] = round(echo_qps / max(min(models.values()), 1e-9), 2)
        if args.results:
            line["target_request_qps"] = rates = target_request_rates(args.results)
            line["headroom"] = {t: round(echo_qps / max(r, 1e-9), 1) for t, r in rates.items()}
        line["workers"] = args.workers
        line["errors"] = errors
        line["logs"] = str(work)
        client.close()
    finally:
        service.stop()
    print(json.dumps(line))
    with (ROOT / "bench" / "results.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    if errors:
        raise SystemExit(f"{errors} wrong answers during the capacity runs; see {work}")


if __name__ == "__main__":
    main()
