"""Saving and reading the drift engine's frozen references: one ``.npz`` file, written atomically,
or one ``.npz`` blob per (service, feature) for a store (:func:`encode_reference`).

The file is written to a temporary name, fsynced, renamed over the old one and the directory
fsynced: after a crash at any moment the file is the old state or the new one, whole.

The file holds, per feature with a frozen reference, the reference vectors, the centroid and the
reference response lengths as arrays, plus one JSON document (``meta``) with the embedder name,
the finish reasons, the SPC chart and the freeze time. No pickles: it loads with
``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from llmpulse.processor.drift.state import FeatureDrift

__all__ = ["Saved", "decode_references", "encode_reference", "read_references", "write_references"]

logger = logging.getLogger(__name__)

STATE_VERSION = 1

Saved = tuple[dict[str, np.ndarray], dict[str, Any]]
"""One feature's arrays and metadata, as :meth:`FeatureDrift.snapshot` makes them."""


def write_references(
    path: str | os.PathLike[str], embedder_name: str, features: Iterable[FeatureDrift]
) -> int:
    """Write every frozen reference of ``features`` to ``path``; returns how many were written."""
    arrays: dict[str, np.ndarray] = {}
    metas: list[dict[str, Any]] = []
    for state in features:
        snap = state.snapshot()
        if snap is None:
            continue
        for key, array in snap[0].items():
            arrays[f"f{len(metas)}_{key}"] = array
        metas.append(snap[1])
    meta = {"version": STATE_VERSION, "embedder": embedder_name, "features": metas}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    target = Path(path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            np.savez(out, **arrays)  # type: ignore[arg-type]
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(target.parent)
    return len(metas)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_references(path: str | os.PathLike[str], embedder_name: str, dimensions: int | None) -> list[Saved]:
    """The saved references usable with this embedder; [] (with a warning) when there are none.

    A missing file gives []. A malformed file, one made by another embedder or holding vectors of
    another size than ``dimensions`` (when known) is ignored with a warning.
    """
    target = Path(path)
    if not target.exists():
        return []
    try:
        with np.load(target, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            saved = {k: data[k] for k in data.files if k != "meta"}
        if meta.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported drift state version {meta.get('version')!r}")
        features = [
            ({k.split("_", 1)[1]: v for k, v in saved.items() if k.startswith(f"f{i}_")}, feature_meta)
            for i, feature_meta in enumerate(meta["features"])
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning(
            "event=drift_state_ignored path=%s reason='ignoring unreadable state file' error=%r", target, exc
        )
        return []
    return _usable(features, meta["embedder"], embedder_name, dimensions, target)


def _usable(
    features: list[Saved], saved_embedder: str, embedder_name: str, dimensions: int | None, target: object
) -> list[Saved]:
    """``features`` when this embedder can use them, else [] with a warning naming ``target``."""
    saved_dims = {int(arrays["reference"].shape[1]) for arrays, _ in features}
    if dimensions is not None and saved_dims - {dimensions}:
        logger.warning(
            "event=drift_state_ignored path=%s reason='holds %s-dimensional vectors, the embedder makes %d' "
            "action=collect_new_references",
            target,
            "/".join(map(str, sorted(saved_dims))),
            dimensions,
        )
        return []
    if saved_embedder != embedder_name:
        logger.warning(
            "event=drift_state_ignored path=%s reason='made with embedder %s, not %s' "
            "action=collect_new_references",
            target,
            saved_embedder,
            embedder_name,
        )
        return []
    return features


def encode_reference(embedder_name: str, snap: Saved) -> bytes:
    """One feature's frozen reference as bytes (an ``.npz``: its arrays and a JSON ``meta``), for a
    store row per (service, feature)."""
    arrays, meta = snap
    doc = {"version": STATE_VERSION, "embedder": embedder_name, "feature": meta}
    out = io.BytesIO()
    np.savez(out, meta=np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def decode_references(
    blobs: dict[tuple[str, str], bytes], embedder_name: str, dimensions: int | None, where: str
) -> list[Saved]:
    """The stored references (from :func:`encode_reference`) usable with this embedder; an
    unreadable row, or rows of another embedder or vector size, are ignored with a warning."""
    usable: list[Saved] = []
    for key, blob in sorted(blobs.items()):
        row = f"{where} ({'/'.join(key)})"
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                doc = json.loads(bytes(data["meta"]).decode())
                arrays = {k: data[k] for k in data.files if k != "meta"}
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported drift state version {doc.get('version')!r}")
            saved: Saved = (arrays, doc["feature"])
            embedder = str(doc["embedder"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "event=drift_state_ignored path=%s reason='ignoring unreadable row' error=%r", row, exc
            )
            continue
        usable += _usable([saved], embedder, embedder_name, dimensions, row)
    return usable
