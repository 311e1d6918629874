"""The image a docker target runs, made ready on its engine; first match wins.

- ``image_tarball``: a ``docker save`` archive, loaded once per file (a stamp
  under ``<cache>/docker/`` remembers the image it gave); ``image_ref`` picks the
  image when it holds several;
- ``image_ref``: used as it is when the engine has it, pulled otherwise;
- ``[image] source = "build"``: leapfrog's Debian root filesystem, streamed as a
  ``docker load`` archive (:mod:`harness.images.docker_archive`) once per image
  key and build, tagged ``leapfrog/<distro>-<release>-<arch>:<key>``;
- otherwise ``[image]`` ``path``, ``url`` (downloaded by ``leapfrog images
  fetch``) or ``ref``.

A mistake in the target file (an archive that does not exist or is not a
``docker save`` archive, a reference the engine refuses, no image named) is a
``ConfigError``, never retried; an engine that fails is a ``TargetError``.
Everything here talks to the engine through an :class:`EngineClient`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import ConfigError, LeapfrogError, TargetError
from harness.images.docker_archive import CHUNK, image_tag, load_archive, platform_parts
from harness.kinds import DockerOptions

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.images.cache import ImageMeta


class EngineClient(Protocol):
    """What image work needs of an engine connection (``harness.targets.docker_engine.Engine``)."""

    name: str  # the target, for messages

    @property
    def where(self) -> str: ...

    @property
    def api(self) -> Any: ...

    def connect(self) -> Any: ...

    def errors(self, doing: str) -> contextlib.AbstractContextManager[None]: ...


def resolve(
    engine: EngineClient,
    config: TargetConfig,
    *,
    packages: list[str],
    progress: Callable[[str], None],
    timings: dict[str, float],
) -> str:
    """The reference of the image ``config`` runs, loading, pulling or building it first.

    ``packages``: what the run's suites need in a built image; ``timings``
    receives the seconds a rootfs import took (key ``import``).
    """
    o = config.options
    assert isinstance(o, DockerOptions)
    spec = config.image
    where = config.file
    if o.image_tarball:
        ref, ref_key = (o.image_ref, "image_ref") if o.image_ref else (spec.ref if spec else "", "image.ref")
        return _load_tarball(
            engine, Path(o.image_tarball), (ref, ref_key), key="image_tarball", where=where, progress=progress
        )
    if o.image_ref:
        return _present_or_pull(
            engine, o.image_ref, key="image_ref", where=where, platform=o.platform, progress=progress
        )
    if spec is None:
        raise ConfigError(f'{where}: set "image_ref", "image_tarball" or an [image] table for target {config.name}.')
    if spec.source == "build":
        from harness.images import ensure_image

        cached = ensure_image(spec, packages, progress=progress)
        return _import_rootfs(
            engine, cached.rootfs, cached.meta, platform=o.platform, progress=progress, timings=timings
        )
    if spec.path:
        return _load_tarball(
            engine, Path(spec.path), (spec.ref, "image.ref"), key="image.path", where=where, progress=progress
        )
    if spec.url:
        from harness.paths import downloads_dir

        path = downloads_dir() / (spec.url.rstrip("/").rsplit("/", 1)[-1] or "download")
        if not path.is_file():
            raise ConfigError(
                f"{where}: the image {spec.url} of target {config.name} is not downloaded yet; "
                f"run: leapfrog images fetch {config.name}"
            )
        return _load_tarball(engine, path, (spec.ref, "image.ref"), key="image.url", where=where, progress=progress)
    if spec.ref:
        return _present_or_pull(engine, spec.ref, key="image.ref", where=where, platform=o.platform, progress=progress)
    raise ConfigError(
        f'{where}: [image] source "{spec.source}" names no image to run in Docker; give it a "ref", '
        'a "path" or "url" of a `docker save` archive, or set "image_ref" or "image_tarball".'
    )


def _bad_ref(e: Exception, ref: str, key: str, where: Path) -> ConfigError | None:
    """A ConfigError when the engine refused ``ref`` itself (HTTP 400: not a valid reference), else None."""
    if getattr(e, "status_code", None) != 400:
        return None
    why = getattr(e, "explanation", None) or e
    return ConfigError(
        f'{where}: key "{key}" is "{ref}", which the Docker engine refuses ({why}); '
        'write a reference such as "registry.example/name:tag", in lowercase.'
    )


def _present(engine: EngineClient, ref: str, key: str, where: Path) -> bool:
    """Whether the engine holds image ``ref``."""
    import docker.errors

    try:
        engine.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:
        bad = _bad_ref(e, ref, key, where)
        if bad is None:
            raise
        raise bad from e
    return True


def _present_or_pull(
    engine: EngineClient, ref: str, *, key: str, where: Path, platform: str, progress: Callable[[str], None]
) -> str:
    if _present(engine, ref, key, where):
        return ref
    progress(f"pulling {ref} for {platform}")
    try:
        engine.connect().images.pull(ref, platform=platform)
    except Exception as e:  # any pull failure means the same to the user
        raise _bad_ref(e, ref, key, where) or TargetError(
            f'target {engine.name}: image "{ref}" is not on the engine and could not be pulled ({e}). '
            'Load it first (`docker load -i FILE`) or set "image_tarball" to its archive.'
        ) from e
    return ref


def _load_tarball(
    engine: EngineClient,
    path: Path,
    wanted: tuple[str, str],
    *,
    key: str,
    where: Path,
    progress: Callable[[str], None],
) -> str:
    """``docker load`` the archive ``key`` names, once; a stamp in the cache remembers the image it gave.

    ``wanted``: the image to run from it and the key that names it ("" when the archive holds one).
    """
    import docker.errors

    from harness.paths import docker_dir

    if not path.is_file():
        raise ConfigError(f'{where}: key "{key}" names the image archive "{path}", which does not exist; fix "{key}".')
    api = engine.api
    ref, ref_key = wanted
    if ref and _present(engine, ref, ref_key, where):
        return ref
    st = path.stat()
    with engine.errors("read the engine's identity"):
        identity = str(engine.connect().info().get("ID", engine.where))
    digest = hashlib.sha256(f"{identity}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    stamp = docker_dir() / f"load-{digest[:20]}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, docker.errors.ImageNotFound):
        seen = json.loads(stamp.read_text())
        image_id = str(seen["id"])
        api.inspect_image(image_id)
        with contextlib.suppress(docker.errors.ImageNotFound):
            if api.inspect_image(str(seen["ref"]))["Id"] == image_id:
                return str(seen["ref"])  # still the name it was loaded as
        return image_id
    progress(f"loading {path} into Docker ({st.st_size / 1e9:.2f} GB)")
    start = time.monotonic()
    with path.open("rb") as f:
        loaded = post_load(
            engine,
            iter(lambda: f.read(CHUNK), b""),
            doing=f'load "{path}"',
            what=f'target {engine.name}: docker load of "{path}"',
            refused=lambda error: ConfigError(
                f'{where}: docker load of "{path}" (key "{key}") failed: {error}. It must be a '
                "`docker save` archive (plain, .gz or .xz); a bare root filesystem tarball is not one."
            ),
        )
    if ref:
        chosen = ref
    elif len(loaded) == 1:
        chosen = loaded[0]
    else:
        raise ConfigError(
            f'{where}: "{path}" holds {len(loaded)} images ({", ".join(loaded) or "none"}); '
            'set "image_ref" to the one to run.'
        )
    with engine.errors(f'find image "{chosen}" after loading "{path}"'):
        image_id = str(api.inspect_image(chosen)["Id"])
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"id": image_id, "ref": chosen, "path": str(path), "loaded": loaded}))
    for old in stamp.parent.glob("load-*.json"):  # forget archives that are gone
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if not Path(str(json.loads(old.read_text())["path"])).exists():
                old.unlink()
    progress(f"loaded {chosen} in {time.monotonic() - start:.1f}s")
    return chosen


def _import_rootfs(
    engine: EngineClient,
    rootfs: Path,
    meta: ImageMeta,
    *,
    platform: str,
    progress: Callable[[str], None],
    timings: dict[str, float],
) -> str:
    """Turn a cached root filesystem into ``leapfrog/...:<key>``, once per key and build."""
    import docker.errors
    import filelock

    from harness.paths import docker_dir

    tag = image_tag(meta)
    api = engine.api

    def current() -> bool:
        try:
            labels = api.inspect_image(tag)["Config"].get("Labels") or {}
        except docker.errors.ImageNotFound:
            return False
        return bool(labels.get("leapfrog.built") == meta.built)

    with engine.errors(f'look for image "{tag}"'):
        if current():
            return tag
    locks = docker_dir()
    locks.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(locks / f"{tag.replace('/', '_').replace(':', '_')}.lock")):
        with engine.errors(f'look for image "{tag}"'):
            if current():  # another run imported it while we waited
                return tag
        labels = {"leapfrog": "1", "leapfrog.image": meta.name, "leapfrog.built": meta.built}
        progress(f"importing {meta.name} into Docker as {tag}")
        start = time.monotonic()

        def report(done: int, total: int) -> None:
            progress(f"importing {tag}: {done / 1e9:.2f} of {total / 1e9:.2f} GB")

        post_load(
            engine,
            load_archive(rootfs, tag, platform=platform, labels=labels, on_bytes=report),
            doing=f'import "{rootfs}" as image "{tag}"',
            what=f'target {engine.name}: importing "{tag}"',
            refused=lambda error: TargetError(f'target {engine.name}: importing "{tag}" failed: {error}'),
        )
        with engine.errors(f'import "{rootfs}" as image "{tag}"'):
            arch = api.inspect_image(tag).get("Architecture")
        want = platform_parts(platform)[1]
        if arch != want:
            raise TargetError(
                f'target {engine.name}: the engine stored "{tag}" as {arch}, not {want}; '
                "update Docker (docker.io 20.10 or newer)."
            )
        timings["import"] = round(time.monotonic() - start, 1)
        progress(f"imported {tag} in {timings['import']:.1f}s")
    return tag


# --------------------------------------------------------------------------- the one POST /images/load


def post_load(
    engine: EngineClient,
    archive: Iterable[bytes],
    *,
    doing: str,
    what: str,
    refused: Callable[[str], LeapfrogError],
) -> list[str]:
    """Stream a ``docker load`` archive to the engine; returns the images it reports loaded.

    ``doing`` names the work in engine errors, ``what`` in an HTTP error
    answer; an error the engine reports about the archive itself becomes
    ``refused(message)``.
    """
    api = engine.api
    loaded: list[str] = []
    with engine.errors(doing):
        response = api.post(
            f"{api.base_url}/v{api.api_version}/images/load",
            params={"quiet": "1"},
            data=archive,
            headers={"Content-Type": "application/x-tar"},
            stream=True,
            timeout=None,
        )
        if response.status_code >= 400:
            with contextlib.closing(response):
                raise TargetError(f"{what} failed: the engine answered {response.status_code}: {response.text[:500]}")
        for rec in _json_lines(response):
            if rec.get("error"):
                raise refused(str(rec["error"]))
            text = str(rec.get("stream", ""))
            for prefix in ("Loaded image: ", "Loaded image ID: "):
                if text.startswith(prefix):
                    loaded.append(text[len(prefix) :].strip())
    return loaded


def _json_lines(response: Any) -> Iterator[dict[str, Any]]:
    """The JSON records of a streamed engine answer; the response is closed after."""
    with contextlib.closing(response):
        for raw in response.iter_lines():
            if raw:
                with contextlib.suppress(ValueError):
                    rec = json.loads(raw)
                    if isinstance(rec, dict):
                        yield rec
