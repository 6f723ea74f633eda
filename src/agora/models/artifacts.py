"""Versioned model artefacts on disk: ``root/<name>/<version>/``.

A version folder holds the model's own ``save`` output, ``ids.npz`` (``user_ids`` and
``item_ids`` as unicode arrays, loaded with ``allow_pickle=False``) and ``meta.json``
(name, params, data fingerprint, metrics, creation time, agora version, sizes). On a store
with pseudonymous ids the user ids are written sealed (:mod:`agora.db.pseudonyms`) and
``meta.json`` names the secret's fingerprint (``user_ids``); loading opens them. Versions are
UTC timestamps (``20261123T161502Z``), with ``-2``, ``-3``... appended when one already exists;
the newest is the greatest ``(timestamp, suffix)``. A folder is written under a temporary name
and renamed at the end, so a half-written artefact is never picked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import agora
from agora.db.pseudonyms import PLAIN, IdSealer, WrongSecret
from agora.features.interactions import Interactions
from agora.models.base import Recommender
from agora.models.registry import model_class

_VERSION = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")


@dataclass
class LoadedModel:
    """A model read back from an artefact, with its id maps."""

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    meta: dict[str, Any]
    path: Path
    user_index: dict[str, int] = field(default_factory=dict, repr=False)
    item_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.user_index:
            self.user_index = {u: i for i, u in enumerate(self.user_ids.tolist())}
        if not self.item_index:
            self.item_index = {t: i for i, t in enumerate(self.item_ids.tolist())}


def version_key(version: str) -> tuple[str, int] | None:
    """Sort key of a version folder name, or None if the name is not a version."""
    m = _VERSION.match(version)
    if not m:
        return None
    return m.group(1), int(m.group(2) or 1)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def save_artifact(
    model: Recommender,
    root_dir: str | Path,
    interactions: Interactions,
    metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
    ids: IdSealer | None = None,
) -> Path:
    """Write a new version of ``model`` under ``root_dir/<model.name>/`` and return its path
    (``ids``: the user ids are written sealed with it)."""
    base = Path(root_dir) / model.name
    base.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    version, n = stamp, 1
    while (base / version).exists():
        n += 1
        version = f"{stamp}-{n}"
    tmp = base / f".tmp-{version}-{os.getpid()}"
    model.save(tmp)
    np.savez(
        tmp / "ids.npz",
        user_ids=sealed_user_ids(interactions.user_ids, ids),
        item_ids=np.asarray(interactions.item_ids).astype(str),
    )
    meta = {
        "name": model.name,
        "version": version,
        "params": model.get_params(),
        "data_fingerprint": interactions.fingerprint(),
        "metrics": metrics or {},
        "created": now.astimezone(UTC).isoformat(),
        "agora_version": agora.__version__,
        "n_users": int(interactions.n_users),
        "n_items": int(interactions.n_items),
        "user_ids": ids.fingerprint if ids is not None else PLAIN,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default))
    final = base / version
    tmp.rename(final)
    return final


def sealed_user_ids(user_ids: Any, ids: IdSealer | None) -> np.ndarray:
    """User ids as ``ids.npz`` holds them: sealed with ``ids`` (an erased entry stays empty)."""
    if ids is None:
        return np.asarray(user_ids).astype(str)
    return np.asarray([ids.seal(u) if u else "" for u in user_ids], dtype=str)


def _sealer_for(meta: dict[str, Any], ids: IdSealer | None, path: Path) -> IdSealer | None:
    """The sealer an artefact's user ids need (None: plain); WrongSecret when ``ids`` differs."""
    kept = meta.get("user_ids", PLAIN)
    given = ids.fingerprint if ids is not None else PLAIN
    if kept != given:
        raise WrongSecret(
            f"{path}: its user ids are kept {kept.split(':')[0]}, the store's "
            f"{given.split(':')[0]}{' under another secret' if kept != PLAIN != given else ''}:"
            " `agora users rekey` brings the artefacts in line"
        )
    return ids


def list_artifacts(root_dir: str | Path, name: str | None = None) -> list[Path]:
    """Complete artefact folders (with meta.json), per model name, oldest version first."""
    root = Path(root_dir)
    if not root.is_dir():
        return []
    names = [name] if name is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    out: list[Path] = []
    for n in names:
        base = root / n
        if not base.is_dir():
            continue
        versions = [
            p
            for p in base.iterdir()
            if p.is_dir() and version_key(p.name) and (p / "meta.json").is_file()
        ]
        out.extend(sorted(versions, key=lambda p: version_key(p.name)))
    return out


def prune_artifacts(root_dir: str | Path, name: str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` versions of model ``name``; returns what was removed.

    A server still holding an older version in memory is unaffected: it loaded it whole.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    old = list_artifacts(root_dir, name)[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old


def read_meta(path: str | Path) -> dict[str, Any]:
    """An artefact's ``meta.json`` (name, version, params, metrics...), without its arrays."""
    return json.loads((Path(path) / "meta.json").read_text())


def load_artifact(path: str | Path, ids: IdSealer | None = None) -> LoadedModel:
    """Read one artefact folder (``ids``: the sealer of a store with pseudonymous ids)."""
    path = Path(path)
    meta = read_meta(path)
    sealer = _sealer_for(meta, ids, path)
    model = model_class(meta["name"]).load(path)
    with np.load(path / "ids.npz", allow_pickle=False) as arrays:
        user_ids = arrays["user_ids"].astype(object)
        item_ids = arrays["item_ids"].astype(object)
    if sealer is not None:
        user_ids = np.asarray([sealer.open(u) if u else "" for u in user_ids], dtype=object)
    return LoadedModel(model=model, user_ids=user_ids, item_ids=item_ids, meta=meta, path=path)


def load_latest(root_dir: str | Path, name: str, ids: IdSealer | None = None) -> LoadedModel:
    """The newest (greatest version) artefact of model ``name``; FileNotFoundError if none."""
    found = list_artifacts(root_dir, name)
    if not found:
        raise FileNotFoundError(f"no saved artefact for model {name!r} under {root_dir}")
    return load_artifact(found[-1], ids)


def forget_user(path: str | Path, user_id: str, ids: IdSealer | None = None) -> bool:
    """Erase one user from the artefact version at ``path``; returns whether it held them.

    Their entry in ``ids.npz`` is left empty (so every other user keeps their row; an empty id
    is never asked for) and the model forgets their rows (:meth:`Recommender.forget_users`).
    The version is written again under a temporary name and its files replace the old ones one
    by one, ``meta.json`` last (with ``erasures`` counting the erasures it went through): a
    reader meanwhile sees the folder at every moment, with the user either still there or gone.
    """
    path = Path(path)
    sealer = _sealer_for(read_meta(path), ids, path)
    with np.load(path / "ids.npz", allow_pickle=False) as arrays:
        user_ids, item_ids = arrays["user_ids"], arrays["item_ids"]
    rows = np.flatnonzero(user_ids == (sealer.seal(user_id) if sealer is not None else user_id))
    if not len(rows):
        return False
    loaded = load_artifact(path, ids)
    loaded.model.forget_users(rows)
    user_ids = user_ids.copy()
    user_ids[rows] = ""
    meta = dict(loaded.meta)
    meta["erasures"] = int(meta.get("erasures", 0)) + 1
    tmp = path.with_name(f".erasing-{path.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    loaded.model.save(tmp)
    np.savez(tmp / "ids.npz", user_ids=user_ids, item_ids=item_ids)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default))
    written = sorted(
        (p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()),
        key=lambda p: p.name == "meta.json",
    )
    for relative in written:
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / relative, path / relative)
    shutil.rmtree(tmp)
    return True


def forget_user_everywhere(
    root_dir: str | Path, user_id: str, ids: IdSealer | None = None
) -> dict[str, list[str]]:
    """:func:`forget_user` on every version of every model under ``root_dir`` (the older
    versions kept for rollback included); returns model name -> the versions that held them."""
    erased: dict[str, list[str]] = {}
    for path in list_artifacts(root_dir):
        if forget_user(path, user_id, ids):
            erased.setdefault(path.parent.name, []).append(path.name)
    return erased
