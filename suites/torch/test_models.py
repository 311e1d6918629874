"""Forward passes, one training step and latency of the three models against the x86-64 golden."""

from __future__ import annotations

import pytest
import torch
import torch_models
from conftest import (
    FORWARD_ATOL,
    FORWARD_RTOL,
    GRAD_ATOL,
    GRAD_RTOL,
    Metrics,
    assert_close,
    assert_same,
    golden_input,
    golden_meta,
    load_model,
    timed,
)


@pytest.mark.parametrize("name", torch_models.NAMES)
def test_forward(name: str, metrics: Metrics) -> None:
    """Eval-mode forward pass with the shipped weights reproduces the golden logits."""
    model = load_model(name)
    x, _, gold = golden_input(name)
    with torch.no_grad():
        out = model(x)
    assert_close("logits", out, gold["forward"], rtol=FORWARD_RTOL, atol=FORWARD_ATOL, metrics=metrics)


@pytest.mark.parametrize("name", torch_models.NAMES)
def test_train_step(name: str, metrics: Metrics) -> None:
    """Cross-entropy loss, every gradient, and every parameter and buffer after one SGD step."""
    model = load_model(name)
    x, y, gold = golden_input(name)
    loss = torch_models.train_step(model, x, y)
    assert_close("loss", loss, gold["train.loss"], rtol=FORWARD_RTOL, atol=FORWARD_ATOL, metrics=metrics)
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} has no gradient"
        assert_close(
            f"grad.{pname}", param.grad, gold[f"train.grad.{pname}"], rtol=GRAD_RTOL, atol=GRAD_ATOL, metrics=metrics
        )
        # lr * grad moves a parameter by at most ~0.1 * |grad|: the gradient tolerance carries over.
        assert_close(
            f"param.{pname}", param, gold[f"train.param.{pname}"], rtol=GRAD_RTOL, atol=GRAD_ATOL, metrics=metrics
        )
    for bname, buf in model.named_buffers():
        if buf.dtype.is_floating_point:  # BatchNorm running mean/var from the batch statistics
            assert_close(
                f"buffer.{bname}",
                buf,
                gold[f"train.buffer.{bname}"],
                rtol=FORWARD_RTOL,
                atol=FORWARD_ATOL,
                metrics=metrics,
            )
        else:  # num_batches_tracked
            assert_same(f"buffer.{bname}", buf, gold[f"train.buffer.{bname}"], metrics=metrics)


@pytest.mark.parametrize("name", torch_models.NAMES)
def test_latency(name: str, bench_repeats: int, metrics: Metrics) -> None:
    """Median and p90 latency of one eval forward pass; the answer stays bit-identical over the repetitions."""
    model = load_model(name)
    x, _, gold = golden_input(name)
    with torch.inference_mode():
        first = model(x)
        median, p90 = timed(lambda: model(x), bench_repeats)
        last = model(x)
    metrics["median_ms"] = median
    metrics["p90_ms"] = p90
    metrics["repeats"] = bench_repeats
    metrics["batch"] = int(x.shape[0])
    metrics["threads"] = torch.get_num_threads()
    metrics["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    metrics["golden_cpu_capability"] = golden_meta()["cpu_capability"]
    # Same model, same input, same thread count: no reason for the CPU kernels to answer differently.
    assert_same("repeat", last, first, metrics=metrics)
    assert_close("logits", first, gold["forward"], rtol=FORWARD_RTOL, atol=FORWARD_ATOL, metrics=metrics)


def test_thread_counts(metrics: Metrics) -> None:
    """One intra-op thread and the default count give the golden answer for every model."""
    default = torch.get_num_threads()
    metrics["default_threads"] = default
    metrics["interop_threads"] = torch.get_num_interop_threads()
    try:
        for threads in sorted({1, default}):
            torch.set_num_threads(threads)
            for name in torch_models.NAMES:
                model = load_model(name)
                x, _, gold = golden_input(name)
                with torch.no_grad():
                    out = model(x)
                assert_close(
                    f"t{threads}.{name}", out, gold["forward"], rtol=FORWARD_RTOL, atol=FORWARD_ATOL, metrics=metrics
                )
    finally:
        torch.set_num_threads(default)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_forward_bfloat16(name: str, metrics: Metrics) -> None:
    """The model cast to bfloat16 stays within bfloat16 rounding of the float32 golden logits."""
    model = load_model(name).to(torch.bfloat16)
    x, _, gold = golden_input(name)
    with torch.no_grad():
        out = model(x.to(torch.bfloat16)).float()
    # bfloat16 keeps 8 significant bits (relative step 2**-8 = 0.4%); weights, inputs and
    # every layer's output are rounded to it, and logits are O(1): a 5e-2 budget is a few
    # bf16 steps per layer, while a broken bf16 kernel is off by O(1).
    assert_close("logits_bf16", out, gold["forward"], rtol=5e-2, atol=5e-2, metrics=metrics)
