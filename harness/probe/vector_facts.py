"""What the AI stack does with vectors, for ``facts.py`` (stdlib only; runs in a target).

Shipped next to ``facts.py`` as ``leapfrog_vector_facts.py`` (``harness.probe.VECTOR_FACTS_FILE``).

:func:`vector_facts`: where numpy is installed, a forked child imports it (so a
numpy that crashes on this CPU cannot take the facts with it) and reports numpy's build-time BLAS and SIMD
(``numpy.show_config(mode="dicts")``), the BLAS library the process actually
loaded and, for OpenBLAS, the configuration and core it picked at run time
(``openblas_get_config``/``openblas_get_corename``, e.g. ``RISCV64_ZVL128B``),
and threadpoolctl's view (``internal_api``, ``architecture``) when it is
importable.  numpy is never imported by the facts process itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time

MAX_VECTOR_TEXT = 600  # characters kept of one vector fact (the report bounds them again)
VECTOR_TIMEOUT = 120.0  # seconds the child that imports numpy may take
#: Words in a loaded library's file name that make it a BLAS.
BLAS_WORDS = ("blas", "blis", "mkl_rt", "armpl")
#: OpenBLAS's entry points are named ``<prefix>openblas_get_config<suffix>``: plain,
#: 64-bit-integer builds (``64_``) and scipy-openblas wheels (``scipy_`` prefix).
OPENBLAS_NAMES = (("", ""), ("", "64_"), ("scipy_", "64_"), ("scipy_", ""))


def _text(value: object) -> str:
    return " ".join(str(value).split())[:MAX_VECTOR_TEXT]


def blas_libraries(maps: str) -> list[str]:
    """The shared libraries named like a BLAS in /proc/self/maps text, in load order, each once."""
    seen: list[str] = []
    for line in maps.splitlines():
        fields = line.split(None, 5)
        path = fields[5].strip() if len(fields) == 6 else ""
        name = path.rsplit("/", 1)[-1].lower()
        if ".so" in name and any(w in name for w in BLAS_WORDS) and path not in seen:
            seen.append(path)
    return seen


def openblas_runtime(path: str) -> str:
    """What the OpenBLAS at ``path`` says at run time: its configuration and the core it picked ('' if not OpenBLAS)."""
    try:
        import ctypes

        lib = ctypes.CDLL(path)
    except (ImportError, OSError):
        return ""
    for prefix, suffix in OPENBLAS_NAMES:
        config = getattr(lib, "%sopenblas_get_config%s" % (prefix, suffix), None)
        if config is None:
            continue
        config.restype = ctypes.c_char_p
        text = (config() or b"").decode("utf-8", "replace")
        core = getattr(lib, "%sopenblas_get_corename%s" % (prefix, suffix), None)
        if core is not None:
            core.restype = ctypes.c_char_p
            text += "; core %s" % (core() or b"").decode("utf-8", "replace")
        threads = getattr(lib, "%sopenblas_get_num_threads%s" % (prefix, suffix), None)
        text += "; %d threads" % threads() if threads is not None else ""
        return _text(text)
    return ""


def numpy_build(config: object) -> dict[str, str]:
    """numpy's build-time BLAS and SIMD from ``numpy.show_config(mode="dicts")``."""
    out: dict[str, str] = {}
    if not isinstance(config, dict):
        return out
    deps = config.get("Build Dependencies")
    blas = deps.get("blas") if isinstance(deps, dict) else None
    if isinstance(blas, dict):
        words = [blas.get("name", ""), blas.get("version", "")]
        if blas.get("openblas configuration") not in (None, "", "unknown"):
            words.append("(%s)" % blas["openblas configuration"])
        out["numpy_blas"] = _text(" ".join(str(w) for w in words if w))
    simd = config.get("SIMD Extensions")
    if isinstance(simd, dict):
        parts = []
        for key in ("baseline", "found", "not found"):
            value = simd.get(key)
            if isinstance(value, list) and value:
                parts.append("%s %s" % (key, " ".join(str(v) for v in value)))
        out["numpy_simd"] = _text("; ".join(parts) or "none")
    return out


def threadpool_text(info: object) -> str:
    """threadpoolctl's ``threadpool_info()`` as one line per pool: API, internal API, version, architecture, threads."""
    pools = []
    for pool in info if isinstance(info, list) else []:
        if isinstance(pool, dict):
            words = [pool.get(k) for k in ("user_api", "internal_api", "version", "architecture", "threading_layer")]
            words.append("%s threads" % pool.get("num_threads", "?"))
            pools.append(" ".join(str(w) for w in words if w))
    return _text("; ".join(pools) or "no thread pools loaded")


def vector_stack() -> dict[str, str]:
    """Import numpy (and threadpoolctl when present) and say what they do with vectors."""
    out: dict[str, str] = {}
    import numpy

    with contextlib.suppress(TypeError):  # numpy < 1.26: no mode argument
        out.update(numpy_build(numpy.show_config(mode="dicts")))
    libraries = []
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
        libraries = blas_libraries(f.read())
    if libraries:
        out["blas_library"] = _text(", ".join(libraries))
        runtime = [r for r in map(openblas_runtime, libraries) if r]
        names = _text(", ".join(p.rsplit("/", 1)[-1] for p in libraries))
        out["blas_runtime"] = runtime[0] if runtime else "not OpenBLAS (no openblas_get_config in %s)" % names
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError:
        return out
    out["threadpoolctl"] = threadpool_text(threadpoolctl.threadpool_info())
    return out


def start_vector_facts() -> tuple[int, int] | None:
    """Fork the child that runs :func:`vector_stack`: (pid, read end of its pipe); None without numpy or fork.

    Started first, so numpy's import (a second or more under emulation) overlaps the rest of the facts.
    """
    try:
        import importlib.util

        if importlib.util.find_spec("numpy") is None:
            return None
    except (ImportError, ValueError):
        return None
    if not hasattr(os, "fork"):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read)
            try:
                data = vector_stack()
            except BaseException as e:  # any failure to import is a fact
                data = {"vector_facts_error": _text("numpy could not be imported: %s: %s" % (type(e).__name__, e))}
            payload = json.dumps(data).encode("utf-8")
            while payload:
                payload = payload[os.write(write, payload) :]
        finally:
            os._exit(0)
    os.close(write)
    return pid, read


def finish_vector_facts(child: tuple[int, int] | None, timeout: float = VECTOR_TIMEOUT) -> dict[str, str]:
    """What the child of :func:`start_vector_facts` found: {} with no child; ``vector_facts_error`` when it failed."""
    if child is None:
        return {}
    pid, read = child
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return {"vector_facts_error": "importing numpy took more than %g s; the child was killed" % timeout}
            chunk = pipe.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"vector_facts_error": "importing numpy was killed by signal %d" % os.WTERMSIG(status)}
    try:
        data = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    except ValueError:
        return {"vector_facts_error": "the child that imported numpy printed no JSON"}
    return {str(k): _text(v) for k, v in data.items()} if isinstance(data, dict) else {}


def vector_facts(timeout: float = VECTOR_TIMEOUT) -> dict[str, str]:
    return finish_vector_facts(start_vector_facts(), timeout)
