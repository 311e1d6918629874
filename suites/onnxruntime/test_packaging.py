"""The model files, the execution providers and how onnx and onnxruntime live together."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
from conftest import MODELS, Metrics, golden_meta, model_path, session


def _onnx_owns(domain: str) -> bool:
    """onnx's own operator domains ('' and ai.onnx*); any other was put in onnx's registry by another library."""
    return domain in {"", "ai.onnx"} or domain.startswith("ai.onnx.")


def test_model_files(metrics: Metrics) -> None:
    """Each committed model passes onnx's full checker and re-serialises to the same bytes."""
    meta = golden_meta()
    for name in MODELS:
        raw = model_path(name).read_bytes()
        model = onnx.load_from_string(raw)
        onnx.checker.check_model(model, full_check=True)
        assert model.ir_version == meta["ir_version"], f"{name}: IR version {model.ir_version}"
        assert [(o.domain, o.version) for o in model.opset_import] == [("", meta["opset"])], name
        # protobuf serialisation of a parsed message is deterministic for the same content
        assert model.SerializeToString() == raw, f"{name}: re-serialised bytes differ from the file"
        metrics[f"{name}.bytes"] = len(raw)
        metrics[f"{name}.nodes"] = len(model.graph.node)
    metrics["onnx_version"] = onnx.__version__
    metrics["golden_onnx_version"] = meta["versions"]["onnx"]


def test_providers(metrics: Metrics) -> None:
    """The CPU execution provider exists and is the one a session runs on."""
    available = ort.get_available_providers()
    metrics["onnxruntime_version"] = ort.__version__
    metrics["golden_onnxruntime_version"] = golden_meta()["versions"]["onnxruntime"]
    metrics["providers"] = ",".join(available)
    metrics["device"] = ort.get_device()
    assert "CPUExecutionProvider" in available
    assert session("mlp").get_providers() == ["CPUExecutionProvider"]


def _shared_libonnx() -> str:
    """The shared libonnx that this process mapped, if onnx's C++ code came from one ('' for a static build)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return ""
    for line in maps.read_text(encoding="utf-8", errors="replace").splitlines():
        path = line.split()[-1] if line.split() else ""
        if "/libonnx.so" in path:
            return path
    return ""


def test_onnx_schema_registry_after_onnxruntime(metrics: Metrics) -> None:
    """Importing onnxruntime leaves onnx's own operator schema registry to onnx.

    When both link one shared libonnx (Debian), onnxruntime registers its
    internal operator schemas in onnx's registry; ``onnx.reference`` then
    refuses to import ("assumes every operator has a unique name") unless it
    was imported first, as this suite's conftest does.
    """
    foreign = sorted({s.domain for s in onnx.defs.get_all_schemas_with_history() if not _onnx_owns(s.domain)})
    shared = _shared_libonnx()
    metrics["foreign_schema_domains"] = ",".join(foreign)
    metrics["shared_libonnx"] = shared
    if foreign and shared:
        pytest.xfail(
            f"onnx and onnxruntime {ort.__version__} share {shared}: onnxruntime's schemas for "
            f"{', '.join(foreign)} are in onnx's registry, so onnx.reference fails to import after onnxruntime "
            "(packaging, not the CPU: the same on every Debian architecture)"
        )
    assert not foreign, f"onnx's schema registry holds onnxruntime's domains {foreign}"
