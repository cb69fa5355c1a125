"""Versioned model directories: ``models/<version>/`` with a manifest, and the ``LATEST`` pointer.

A training run writes everything into a staging directory, hashes every file
into ``manifest.json`` and then renames the directory into place, so a reader
(the scorer) never sees a half-written version. The version name is the UTC
time of the run plus the first 8 hex digits of the *content hash*: the SHA-256
over everything that can change a decision -- the model files and the
manifest itself (thresholds, feature names, served model...), all but the
fields derived at publication (:data:`UNHASHED_KEYS`: the hash, the version,
the time and the per-file list, whose report entries carry timestamps). The
same data, seed and libraries give the same content hash on any machine.

:func:`verify` is what the scorer runs before it swaps a version in: every
file the manifest lists exists inside the version directory (a symlink out of
it is refused) and has its recorded hash, the content hash matches, and the
directory is named after the version the hash gives. An edited manifest, or a
version copied under another name, is refused. Errors name the version, never
a server path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qf_sentinel.qf.errors import ConfigError, DataError

MANIFEST = "manifest.json"
LATEST = "LATEST"
#: 2: the content hash covers the manifest too (format 1 hashed the model files only).
#: 3: the anomaly scaler and the cluster centres are tagged arrays (``qf.model.arrays``) like the rest.
FORMAT_VERSION = 3
#: The model files of a version, each covered by the content hash, each read by one class of ``qf.model``.
MODEL_FILES = (
    "risk.npz", "calibration.npz", "coordination.npz", "isolation_forest.npz", "lof.npz", "anomaly_scaler.npz",
    "recommender.npz", "clusters.npz",
)  # fmt: skip
#: Manifest fields outside the content hash: derived from it or from the moment of publication.
UNHASHED_KEYS = frozenset({"content_sha256", "version", "created_at", "files"})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(model_hashes: dict[str, str], manifest: dict[str, Any]) -> str:
    """One hash over the model files' names and hashes, in name order, then the manifest's hashed fields."""
    digest = hashlib.sha256()
    for name in sorted(model_hashes):
        digest.update(f"{name}\0{model_hashes[name]}\n".encode())
    hashed = {key: value for key, value in manifest.items() if key not in UNHASHED_KEYS}
    digest.update(b"manifest\0")
    digest.update(json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    return digest.hexdigest()


def version_name(created: datetime, content: str) -> str:
    """``<UTC time>-<first 8 hex digits of the content hash>``: a version name follows from its content."""
    return f"{created.strftime('%Y%m%dT%H%M%SZ')}-{content[:8]}"


def staging_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".staging-{os.getpid()}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    path.mkdir()
    return path


def publish(staging: Path, root: Path, manifest: dict[str, Any], *, model_files: list[str]) -> Path:
    """Hash the files, write the manifest, move the staging directory to ``root/<version>``, point LATEST at it."""
    files = sorted(p.name for p in staging.iterdir() if p.is_file() and p.name != MANIFEST)
    hashes = {name: sha256_file(staging / name) for name in files}
    model_hashes = {name: hashes[name] for name in model_files}
    manifest = {"format_version": FORMAT_VERSION, **manifest, "model_files": sorted(model_files)}
    # Hash what a reader will parse back (tuples become lists, and so on), so verify() recomputes the same.
    content = content_hash(model_hashes, json.loads(json.dumps(manifest)))
    created = datetime.now(UTC)
    version = version_name(created, content)
    manifest = {
        **manifest,
        "version": version,
        "created_at": created.isoformat(timespec="seconds"),
        "content_sha256": content,
        "files": hashes,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    target = root / version
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(version + "\n")
    pointer.replace(root / LATEST)
    return target


def read_manifest(version_dir: Path) -> dict[str, Any]:
    name = version_dir.name
    path = version_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{name} is not a model version: no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{name}: unreadable {MANIFEST} ({type(exc).__name__})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{name}: {MANIFEST} is not an object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{name}: a format-{manifest.get('format_version')} manifest; this scorer reads format {FORMAT_VERSION} "
            "(train the version again with `qf train`)"
        )
    return manifest


def verify(version_dir: Path) -> dict[str, Any]:
    """The manifest, after checking files, hashes and name (see the module docstring); raises DataError."""
    name = version_dir.name
    inside = version_dir.resolve()
    manifest = read_manifest(version_dir)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DataError(f"{name}: {MANIFEST} has no file list")
    for file, expected in files.items():
        path = version_dir / file
        if not isinstance(file, str) or Path(file).name != file or not path.is_file():
            raise DataError(f"{name}: {file} is missing")
        if path.resolve().parent != inside:
            raise DataError(f"{name}: {file} is a link to outside the version directory")
        if sha256_file(path) != expected:
            raise DataError(f"{name}: {file} does not match its manifest hash")
    model_files = manifest.get("model_files", [])
    if not isinstance(model_files, list) or any(f not in files for f in model_files):
        raise DataError(f"{name}: a model file is not in the manifest's file list")
    content = content_hash({f: files[f] for f in model_files}, manifest)
    if content != manifest.get("content_sha256"):
        raise DataError(f"{name}: the content hash does not match the model files and manifest (edited?)")
    version = manifest.get("version")
    if not isinstance(version, str) or not version.endswith(f"-{content[:8]}"):
        raise DataError(f"{name}: version {version!r} does not follow from the content hash {content[:8]}")
    if version != name:
        raise DataError(f"{name}: the directory holds version {version} (copied under another name?)")
    return manifest


def latest(root: Path) -> Path:
    """The directory LATEST points to (inside ``root``: a link out of it is refused)."""
    pointer = root / LATEST
    if pointer.is_symlink() and pointer.resolve().parent != root.resolve():
        raise DataError(f"{LATEST} is a link to outside the models directory")
    try:
        version = pointer.read_text().strip()
    except FileNotFoundError:
        raise ConfigError("no trained model in the models directory (no LATEST): run `qf train` first") from None
    path = root / version
    if not version or Path(version).name != version or not path.is_dir():
        raise DataError(f"{LATEST} points to {version!r}, which is not a version directory")
    if path.resolve().parent != root.resolve():
        raise DataError(f"{LATEST} points to {version}, a link to outside the models directory")
    return path
