"""Pins: every Hub artefact of a config resolved once to a commit, recorded in a lock file.

The lock file (config key ``lock_file``; the paper face's is ``config/paper.lock.yaml``) holds

* ``hub``: one entry per Hub artefact -- ``{repo_type, repo_id, revision, commit}``, where
  ``revision`` is what the config asks for (``null`` = the default branch) and ``commit`` the
  40-hex commit it resolved to. A run looks each configured artefact up by
  (repo_type, repo_id, revision) and passes the commit to the rules (``rules/common.smk``), so the
  extraction manifest, the shard fingerprint and the data manifest carry it, and a Hub-side change
  cannot alter or silently reuse results. A revision that is already a commit needs no entry.
* ``files``: ``{url: {size, sha256}}`` of downloads whose source publishes no checksums (COCO):
  recorded by the fetch job after the first complete download and verified on every later one.

Resolve (on a machine with Hub access)::

    .venv/bin/python -m vrp.pins config/paper.yaml

which resolves every artefact that has no commit yet (``--update`` re-resolves all) and writes the
lock. It covers every model block of the config, those marked ``extra`` (planned only with
``extra_families: true``) included. A run whose config names a lock file and has an artefact
without a commit stops at start-up with that command as the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from vrp.hub import looks_like_local_path
from vrp.io import atomic_path

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
LOCK_HEADER = (
    "# Pins of every Hub artefact and checksums of every unchecksummed download of the paper\n"
    "# face.\n"
    "# Written by `python -m vrp.pins <config>` (hub) and the COCO fetch job (files); see\n"
    "# src/vrp/pins.py. Commit this file: later runs read it.\n"
)


class PinError(RuntimeError):
    """An artefact is not pinned, or the lock file is malformed; the message names the fix."""


@dataclass(frozen=True)
class HubArtefact:
    """One Hub repository a config uses."""

    key: str  # the config key that names it, e.g. "models.llava.path"
    repo_type: str  # "model" or "dataset"
    repo_id: str
    revision: str | None  # as the config asks (None = the default branch)

    def matches(self, entry: dict) -> bool:
        return (
            entry.get("repo_type") == self.repo_type
            and entry.get("repo_id") == self.repo_id
            and entry.get("revision") == self.revision
        )


def is_commit(revision: str | None) -> bool:
    return bool(revision) and COMMIT_RE.match(str(revision)) is not None


def hub_artefacts(config: dict) -> list[HubArtefact]:
    """Every Hub repository a validated config downloads from (local folders and copies not)."""
    found = []
    for name, model in sorted(config.get("models", {}).items()):
        path = model.get("path")
        if model.get("source") != "hub" or not path:
            continue
        if Path(str(path)).expanduser().exists() or looks_like_local_path(str(path)):
            continue  # a local folder: the shard fingerprint hashes its files
        found.append(HubArtefact(f"models.{name}.path", "model", str(path), model.get("revision")))
    for name, dataset in sorted(config.get("datasets", {}).items()):
        pope = dataset.get("pope") or {}
        if dataset.get("source") != "pope" or pope.get("local_dir"):
            continue
        found.append(
            HubArtefact(
                f"datasets.{name}.pope.repo_id",
                "dataset",
                pope.get("repo_id", "lmms-lab/POPE"),
                pope.get("revision"),
            )
        )
    return found


def read_lock(path: str | Path) -> dict:
    """The lock file's content (``{"hub": [...], "files": {...}}``); missing = an empty lock."""
    path = Path(path)
    if not path.is_file():
        return {"hub": [], "files": {}}
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict) or not isinstance(data.get("hub", []), list):
        raise PinError(
            f"lock file {str(path)!r} is malformed (expected mappings 'hub' and 'files'); "
            "delete it and re-resolve"
        )
    data.setdefault("hub", [])
    data["files"] = data.get("files") or {}
    return data


def write_lock(path: str | Path, lock: dict) -> None:
    """Write the lock atomically, entries in a stable order (reruns give the same bytes)."""
    hub = sorted(
        lock.get("hub", []), key=lambda e: (e["repo_type"], e["repo_id"], str(e.get("revision")))
    )
    body = {"hub": hub, "files": dict(sorted((lock.get("files") or {}).items()))}
    with atomic_path(path, ".yaml") as tmp:
        tmp.write_text(LOCK_HEADER + yaml.safe_dump(body, sort_keys=True), encoding="utf-8")


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for a read-modify-write (two fetch jobs may record at once)."""
    guard = Path(f"{path}.flock")
    guard.parent.mkdir(parents=True, exist_ok=True)
    with open(guard, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pinned_commit(lock: dict, artefact: HubArtefact) -> str | None:
    """The commit an artefact is pinned to (its revision when that already is a commit), or None."""
    if is_commit(artefact.revision):
        return artefact.revision
    for entry in lock.get("hub", []):
        if artefact.matches(entry) and is_commit(entry.get("commit")):
            return entry["commit"]
    return None


def resolve_command(config_path: str | None = None) -> str:
    return f".venv/bin/python -m vrp.pins {config_path or '<your config>.yaml'}"


def pins_for(
    config: dict, lock_path: str | Path | None
) -> tuple[dict[str, str], list[HubArtefact]]:
    """(config key -> pinned commit, artefacts without one) for a validated config.

    Without a lock file only revisions that are commits count as pinned.
    """
    lock = read_lock(lock_path) if lock_path else {"hub": [], "files": {}}
    pinned, missing = {}, []
    for artefact in hub_artefacts(config):
        commit = pinned_commit(lock, artefact)
        if commit is None:
            missing.append(artefact)
        else:
            pinned[artefact.key] = commit
    return pinned, missing


def unpinned_message(
    missing: list[HubArtefact], lock_path: str | Path | None, config_path: str | None = None
) -> str:
    listed = "; ".join(
        f"`{a.key}` = {a.repo_id!r} (revision {a.revision or 'default branch'})" for a in missing
    )
    where = f"the lock file {str(lock_path)!r}" if lock_path else "the config"
    return (
        f"Hub artefact(s) not pinned to a commit in {where}: {listed}. Fix: on a machine with Hub "
        f"access run `{resolve_command(config_path)}` (resolves each to its current commit and "
        "writes the lock; commit the lock file), or set the artefact's `revision` to a 40-hex "
        "commit, or point the key at a local copy (a model folder; "
        "`datasets.<name>.pope.local_dir`)"
    )


def hub_resolver(timeout: float = 30.0) -> Callable[[HubArtefact], str]:
    """The real resolver: the commit ``HfApi.repo_info`` reports for (repo, revision)."""

    def resolve(artefact: HubArtefact) -> str:
        from huggingface_hub import HfApi

        info = HfApi().repo_info(
            artefact.repo_id,
            revision=artefact.revision,
            repo_type=artefact.repo_type,
            timeout=timeout,
        )
        return info.sha

    return resolve


def resolve_pins(
    config: dict,
    lock_path: str | Path,
    resolver: Callable[[HubArtefact], str] | None = None,
    update: bool = False,
) -> dict:
    """Resolve every artefact of ``config`` without a commit (all with ``update``); write the lock.

    ``resolver`` maps an artefact to its commit (default :func:`hub_resolver`; tests pass a fake).
    Entries of artefacts the config no longer uses are kept (another config may share the lock).
    """
    resolver = resolver or hub_resolver()
    with locked(lock_path):
        lock = read_lock(lock_path)
        for artefact in hub_artefacts(config):
            if is_commit(artefact.revision):
                continue
            if not update and pinned_commit(lock, artefact):
                continue
            commit = resolver(artefact)
            if not is_commit(commit):
                raise PinError(
                    f"the Hub gave {commit!r} for {artefact.repo_id!r}, not a 40-hex commit"
                )
            lock["hub"] = [e for e in lock["hub"] if not artefact.matches(e)]
            lock["hub"].append(
                {
                    "repo_type": artefact.repo_type,
                    "repo_id": artefact.repo_id,
                    "revision": artefact.revision,
                    "commit": commit,
                }
            )
        write_lock(lock_path, lock)
    return lock


def recorded_file(lock_path: str | Path | None, url: str) -> dict | None:
    """The ``{size, sha256}`` recorded for ``url``, or None."""
    if not lock_path:
        return None
    entry = read_lock(lock_path)["files"].get(url)
    return dict(entry) if entry and entry.get("sha256") else None


def record_file(lock_path: str | Path, url: str, size: int, sha256: str) -> None:
    """Record a download's size and sha256 (first complete download of an unchecksummed source)."""
    with locked(lock_path):
        lock = read_lock(lock_path)
        lock["files"][url] = {"size": int(size), "sha256": sha256}
        write_lock(lock_path, lock)


def main(argv: list[str] | None = None) -> int:
    from vrp.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m vrp.pins", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="the workflow config, e.g. config/paper.yaml")
    parser.add_argument("--lock", help="lock file to write (default: the config's lock_file)")
    parser.add_argument("--update", action="store_true", help="re-resolve artefacts already pinned")
    parser.add_argument(
        "--schema",
        default="workflow/schemas/config.schema.yaml",
        help="the workflow's config schema (default: the repository's, run from its root)",
    )
    args = parser.parse_args(argv)
    try:
        # every model block, the switched-off extra families' too: switching them on needs no re-pin
        config = load_config(args.config, args.schema, all_models=True)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    lock_path = args.lock or config.get("lock_file")
    if not lock_path:
        print(f"{args.config} sets no lock_file; pass --lock <path>", file=sys.stderr)
        return 2
    from vrp.hub import network_errors

    try:
        lock = resolve_pins(config, lock_path, update=args.update)
    except network_errors() as err:
        print(
            f"cannot resolve the pins: the Hub is unreachable or refused "
            f"({type(err).__name__}: {err}); run this on a machine with Hub access "
            "(gated models: accept the licence, `hf auth login`)",
            file=sys.stderr,
        )
        return 1
    for entry in lock["hub"]:
        print(
            f"{entry['repo_type']:8s} {entry['repo_id']} @ {entry['revision'] or 'default'}"
            f" -> {entry['commit']}"
        )
    print(f"wrote {lock_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
