"""Versioned model directories: ``models/<version>/`` with a manifest, and the ``LATEST`` pointer.

A training run writes everything into a staging directory, hashes every file
into ``manifest.json`` and then renames the directory into place, so a reader
(the scorer) never sees a half-written version. The version name is the UTC
time of the run plus the first 8 hex digits of the *content hash*: the SHA-256
over the model files (not the report or the manifest, which carry timestamps),
so the same data and seed give the same content hash on any machine.

:func:`verify` is what the scorer runs before it swaps a version in: every
file the manifest lists exists and has its recorded hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qf.errors import ConfigError, DataError

MANIFEST = "manifest.json"
LATEST = "LATEST"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(hashes: dict[str, str]) -> str:
    """One hash over the model files' names and hashes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name]}\n".encode())
    return digest.hexdigest()


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
    content = content_hash(model_hashes)
    created = datetime.now(UTC)
    version = f"{created.strftime('%Y%m%dT%H%M%SZ')}-{content[:8]}"
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "created_at": created.isoformat(timespec="seconds"),
        **manifest,
        "content_sha256": content,
        "model_files": sorted(model_files),
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
    path = version_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{version_dir} is not a model version: no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: not a format-{FORMAT_VERSION} manifest")
    return manifest


def verify(version_dir: Path) -> dict[str, Any]:
    """The manifest, after checking every listed file's SHA-256; raises DataError on any mismatch."""
    manifest = read_manifest(version_dir)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DataError(f"{version_dir / MANIFEST}: no file list")
    for name, expected in files.items():
        path = version_dir / name
        if Path(name).name != name or not path.is_file():
            raise DataError(f"{version_dir}: {name} is missing")
        if sha256_file(path) != expected:
            raise DataError(f"{version_dir}: {name} does not match its manifest hash")
    model_hashes = {name: files[name] for name in manifest.get("model_files", [])}
    if content_hash(model_hashes) != manifest.get("content_sha256"):
        raise DataError(f"{version_dir}: content hash does not match the model files")
    return manifest


def latest(root: Path) -> Path:
    """The directory LATEST points to."""
    try:
        version = (root / LATEST).read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"no trained model under {root}: run `qf train` first") from None
    path = root / version
    if not version or Path(version).name != version or not path.is_dir():
        raise DataError(f"{root / LATEST} points to {version!r}, which is not a version directory")
    return path
