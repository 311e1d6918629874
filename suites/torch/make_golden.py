#!/usr/bin/env python3
"""Regenerate every file under golden/ for the torch suite.

Run on a native x86-64 host with the same torch as the image (Debian trixie:
python3-torch 2.6): ``leapfrog golden torch`` runs it in debian-trixie-amd64;
by hand, with this folder as the cwd::

    PYTHONPATH=../../harness/probe python3 make_golden.py

Writes, per model (mlp, cnn, transformer):

- ``<name>.pt``   its weights (``state_dict``, initialised from a fixed seed)
- ``<name>.npz``  the fixed input and labels, the eval-mode forward output,
  and the loss, every gradient, every parameter and buffer after one SGD step

and ``quant.npz`` (dynamic int8 Linear on each quantized engine this torch
has), ``rng.npz`` (random streams of fixed seeds) and ``meta.json``.
Deterministic: the same torch build writes the same tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch_models as m
import torch_recipes as r
from leapfrog_checks import save_golden
from leapfrog_suite import generated_on, write_meta

OUT = Path(__file__).parent / "golden"


def model_golden(index: int, name: str) -> None:
    torch.manual_seed(m.INIT_SEED + index)
    model = m.build(name)
    weights = OUT / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    print(f"wrote {weights} ({weights.stat().st_size} bytes)")

    gen = torch.Generator().manual_seed(r.INPUT_SEED + index)
    x = torch.randn(m.input_shape(name), generator=gen)
    y = torch.randint(0, m.CLASSES, (m.BATCH,), generator=gen)
    out: dict[str, np.ndarray] = {"in.x": x.numpy(), "in.y": y.numpy()}

    model.eval()
    with torch.no_grad():
        out["forward"] = model(x).numpy()
    loss = m.train_step(model, x, y)
    out["train.loss"] = loss.numpy()
    for pname, param in model.named_parameters():
        assert param.grad is not None
        out[f"train.grad.{pname}"] = param.grad.numpy()
        out[f"train.param.{pname}"] = param.detach().numpy()
    for bname, buf in model.named_buffers():
        out[f"train.buffer.{bname}"] = buf.numpy()
    save_golden(OUT, name, out)


def quant_golden() -> None:
    out: dict[str, np.ndarray] = {}
    model, x = r.quant_model_and_input()
    out["in.x"] = x.numpy()
    with torch.no_grad():
        out["float"] = model(x).numpy()
    for engine in r.QUANT_ENGINES:
        if engine in torch.backends.quantized.supported_engines:
            out[f"engine.{engine}"] = r.dynamic_quantized_output(model, x, engine).numpy()
    save_golden(OUT, "quant", out)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    torch.use_deterministic_algorithms(True)
    for index, name in enumerate(m.NAMES):
        model_golden(index, name)
    quant_golden()
    save_golden(OUT, "rng", {k: v.numpy() for k, v in r.rng_streams().items()})
    meta = {
        "generated_on": generated_on(),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "quantized_engines": list(torch.backends.quantized.supported_engines),
    }
    write_meta(OUT, meta)


if __name__ == "__main__":
    main()
