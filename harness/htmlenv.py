"""The Jinja environment every HTML page of leapfrog is rendered with: the run report and ``leapfrog deps --html``.

Templates live inside the package (``harness/report/templates``), autoescape
is on and undefined names raise (``StrictUndefined``); compiled templates are
cached under :func:`harness.paths.templates_dir`.
"""

from __future__ import annotations

import contextlib
import functools

import jinja2
import jinja2.bccache

from harness.paths import templates_dir


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept in the user cache (a third of a second per run).

    Keyed by the template's source checksum and Python's magic number, so an
    edited template or another interpreter never reuses a stale entry; a cache
    that cannot be written costs only the compile.
    """

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError, EOFError, ValueError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    folder = templates_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _TemplateCache(str(folder))


@functools.cache
def env() -> jinja2.Environment:
    """The one Jinja environment of leapfrog's HTML (templates in ``harness/report/templates``)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        bytecode_cache=_bytecode_cache(),
    )
