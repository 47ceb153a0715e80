"""The paper's released statistics as a suite: ``paper``, imported once into ``<data>/paper/``.

The release (dataset ``Aimpoint-Digital/pythia-massive-activations`` on the Hugging Face hub,
MIT; the book's page "Reading the paper", section on the released statistics) holds one file
``pythia_{size}/stats/exp2_pythia_{size}_step{N}`` per model and checkpoint.
:func:`import_release` reads them with :func:`~massive_activations.measurement.raw_import.import_raw`
into the activation table of the suite ``paper`` (dtype ``float16``, variant ``raw``), one part
file per source file, so a killed import resumes where it stopped; it writes
``<data>/paper/manifest.json`` holding

* ``sources``: every source file (by name) with its sha256 and its path in the release;
* ``skipped``: the malformed files (the release has one, ``pythia_1b`` step 0) and why;
* ``release``: where the files came from (a folder, or the hub repository and the pinned
  revision :data:`RELEASE_REVISION`) and ``synthetic`` (true for a stand-in,
  :mod:`massive_activations.datasets.standin`);
* ``files``: the sha256 of the folder's own files, as ``make data``'s manifests do (the
  chapters add their derived tables under ``derived``);
* ``complete``: false until the import finished.

A second call with the same files imports nothing and reads the table.  A call with other
contents under a name already imported, or a stand-in where the release was imported (or the
reverse), is refused, naming the folder to delete.  Without a folder the release is
downloaded (:func:`download_release`: only the stats files, at the pinned revision); offline
(``HF_HUB_OFFLINE=1``) the error says to pass the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from massive_activations import reference
from massive_activations.datasets.standin import is_synthetic
from massive_activations.measurement.raw_import import RAW_NAME, find_raw_files, import_raw
from massive_activations.measurement.store import ActivationStore, read_table
from massive_activations.provenance import record, sha256_file
from massive_activations.registry import atomic_write

__all__ = [
    "PAPER_SUITE",
    "RELEASE_DTYPE",
    "RELEASE_PATTERNS",
    "RELEASE_REPO",
    "RELEASE_REVISION",
    "ReleaseError",
    "ReleaseInfo",
    "download_release",
    "import_release",
    "release_info",
    "release_steps",
    "release_summary",
]

_RELEASE = reference.entry("release")
#: Hub dataset of the paper's released statistics.
RELEASE_REPO: str = _RELEASE["repo_id"]
#: The pinned revision (commit) downloaded.
RELEASE_REVISION: str = _RELEASE["revision"]
#: The files taken from it: the raw statistics only.
RELEASE_PATTERNS = (_RELEASE["stats_files"],)
#: Precision the release's statistics are recorded under (Sun et al.'s code loads fp16).
RELEASE_DTYPE = "float16"
#: Suite name (the folder under the data folder).
PAPER_SUITE = "paper"

_SKIPPED_COLUMNS = ["file", "model", "step", "reason"]


class ReleaseError(RuntimeError):
    """The release cannot be found, downloaded or imported; the message names the fix."""


@dataclass
class ReleaseInfo:
    """What ``<data>/paper/manifest.json`` says about the imported release.

    Attributes
    ----------
    synthetic : bool
        True when the files came from a stand-in: never the paper's data.
    origin : dict
        ``{"folder": ...}`` or ``{"repo_id": ..., "revision": ..., "folder": snapshot}``.
    sources : dict
        ``{file name: {"sha256", "path"}}`` of every file seen, malformed ones included.
    skipped : pandas.DataFrame
        The files not imported: ``file, model, step, reason``.
    complete : bool
    imported_now : int
        Files imported by the call that returned this (0 when it only read the table).
    """

    synthetic: bool
    origin: dict
    sources: dict
    skipped: pd.DataFrame
    complete: bool
    imported_now: int = 0
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """How to name the data on a page."""
        if self.synthetic:
            return "a SYNTHETIC stand-in of the paper's release (not the paper's data)"
        where = self.origin.get("repo_id")
        if where:
            return f"the paper's release ({where} at {self.origin.get('revision', '?')[:7]})"
        return f"the paper's release (from {self.origin.get('folder', '?')})"


def _store(data_dir: str | Path) -> ActivationStore:
    return ActivationStore(data_dir, PAPER_SUITE)


def _manifest_path(data_dir: str | Path) -> Path:
    return _store(data_dir).dir / "manifest.json"


def _read_manifest(data_dir: str | Path) -> dict | None:
    path = _manifest_path(data_dir)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ReleaseError(
            f"{path} is not valid JSON ({error}): delete {path.parent} and import again."
        ) from None


def _write_manifest(data_dir: str | Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write(_manifest_path(data_dir), lambda tmp: tmp.write_text(text))


def _skipped_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=_SKIPPED_COLUMNS).astype({"step": "int64"})


def _info(manifest: dict, imported_now: int = 0) -> ReleaseInfo:
    return ReleaseInfo(
        synthetic=bool(manifest.get("synthetic")),
        origin=dict(manifest.get("release") or {}),
        sources=dict(manifest.get("sources") or {}),
        skipped=_skipped_frame(list(manifest.get("skipped") or [])),
        complete=bool(manifest.get("complete")),
        imported_now=imported_now,
        manifest=manifest,
    )


def release_info(data_dir: str | Path = "data") -> ReleaseInfo:
    """The manifest of an imported release, as a :class:`ReleaseInfo`.

    Raises
    ------
    ReleaseError
        If nothing was imported into ``<data_dir>/paper/``.
    """
    manifest = _read_manifest(data_dir)
    if manifest is None:
        raise ReleaseError(
            f"No release imported in {_store(data_dir).dir}: call "
            "suite_activations('paper', data_dir, paper_data=FOLDER) (or import_release) first."
        )
    return _info(manifest)


def download_release(
    *, cache_dir: str | Path | None = None, revision: str = RELEASE_REVISION
) -> Path:
    """Download the release's stats files (or find them in the hub cache); return the folder.

    ``huggingface_hub.snapshot_download(repo_type="dataset")`` of :data:`RELEASE_REPO` at
    ``revision``, only :data:`RELEASE_PATTERNS`.  With ``HF_HUB_OFFLINE=1`` it finds a
    snapshot already in the cache, or fails.

    Raises
    ------
    ReleaseError
        When the hub cannot be reached and the cache does not hold the snapshot; the message
        says to pass the folder (``paper_data``) or to go online.
    """
    from huggingface_hub import is_offline_mode, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id=RELEASE_REPO,
            repo_type="dataset",
            revision=revision,
            allow_patterns=list(RELEASE_PATTERNS),
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        why = "HF_HUB_OFFLINE=1" if is_offline_mode() else f"the hub cannot be reached ({error})"
        raise ReleaseError(
            f"The paper's release {RELEASE_REPO} (revision {revision[:7]}) is not in the Hugging "
            f"Face cache and {why}. Pass paper_data=FOLDER (PAPER_DATA=FOLDER for make): a "
            "folder laid out as the release, pythia_<size>/stats/exp2_pythia_<size>_step<N>; "
            "or unset HF_HUB_OFFLINE to download it."
        ) from error
    return Path(folder)


def _source_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """``{file name: (path, path relative to folder)}`` of the release's files in ``folder``."""
    if not folder.exists():
        raise ReleaseError(
            f"No release folder at {folder}: pass the folder that holds "
            "pythia_<size>/stats/exp2_pythia_<size>_step<N> files (paper_data / PAPER_DATA)."
        )
    try:
        paths = find_raw_files([folder])
    except FileNotFoundError:
        raise ReleaseError(
            f"{folder} holds no exp2_* files: pass the folder of the release "
            "(pythia_<size>/stats/exp2_pythia_<size>_step<N>)."
        ) from None
    out: dict[str, tuple[Path, str]] = {}
    for path in paths:
        rel = path.relative_to(folder).as_posix() if folder.is_dir() else path.name
        if path.name in out:
            raise ReleaseError(
                f"{folder} holds two files named {path.name} ({out[path.name][1]} and {rel}); "
                "keep one of them."
            )
        out[path.name] = (path, rel)
    return out


def _check_compatible(manifest: dict, sources: dict, synthetic: bool, where: Path) -> None:
    if bool(manifest.get("synthetic")) != synthetic:
        kind = {True: "a synthetic stand-in", False: "the paper's release"}
        raise ReleaseError(
            f"{where} holds {kind[bool(manifest.get('synthetic'))]} and the files given are "
            f"{kind[synthetic]}: the two are never mixed. Delete {where}, or use another "
            "data_dir."
        )
    old = manifest.get("sources") or {}
    changed = sorted(n for n, e in sources.items() if n in old and old[n]["sha256"] != e["sha256"])
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        raise ReleaseError(
            f"{where} was imported from other contents of {shown}. Delete {where} to import "
            "these files, or use another data_dir."
        )


def import_release(
    data_dir: str | Path = "data",
    paper_data: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, ReleaseInfo]:
    """Import the release into ``<data_dir>/paper/`` if needed, then read its table.

    Parameters
    ----------
    data_dir : str or Path
        The data folder.
    paper_data : str or Path, optional
        A folder laid out as the release (or a sub-folder, or one file).  Default: the
        imported table when complete, else the release downloaded (:func:`download_release`).
    cache_dir : str or Path, optional
        Hugging Face cache for the download.
    progress : bool
        Progress bar over files.

    Returns
    -------
    table : pandas.DataFrame
        The activation table of suite ``paper``; ``table.attrs["synthetic"]`` and
        ``table.attrs["release"]`` (:attr:`ReleaseInfo.label`) say what it is.
    info : ReleaseInfo
    """
    store = _store(data_dir)
    manifest = _read_manifest(data_dir)
    if manifest is None and (store.table_path.exists() or store.parts_dir.exists()):
        raise ReleaseError(
            f"{store.dir} holds activations without a release manifest (written by `extract "
            "import`?): its sources cannot be checked. Delete it, or use another data_dir."
        )
    complete = manifest is not None and manifest.get("complete") and store.table_path.is_file()
    if paper_data is None and complete:
        return _read(store, _info(manifest))
    origin: dict
    if paper_data is None:
        folder = download_release(cache_dir=cache_dir)
        origin = {"repo_id": RELEASE_REPO, "revision": RELEASE_REVISION, "folder": str(folder)}
    else:
        folder = Path(paper_data).expanduser()
        origin = {"folder": str(folder.absolute())}
    found = _source_files(folder)
    sources = {
        name: {"sha256": sha256_file(path), "path": rel} for name, (path, rel) in found.items()
    }
    synthetic = is_synthetic(folder)
    if manifest is not None:
        _check_compatible(manifest, sources, synthetic, store.dir)
        if complete and set(sources) <= set(manifest.get("sources") or {}):
            return _read(store, _info(manifest))
    old_sources = (manifest or {}).get("sources") or {}
    # after an interrupted import every file is passed again (import_raw skips done units)
    names = sorted(sources) if not complete else sorted(set(sources) - set(old_sources))
    new = [found[n][0] for n in names]
    new_names = set(names)
    manifest = {
        **(manifest or {}),  # keeps what the chapters added ("derived")
        "suite": PAPER_SUITE,
        "release": origin,
        "synthetic": synthetic,
        "dtype": RELEASE_DTYPE,
        "sources": {**old_sources, **sources},
        "skipped": [s for s in (manifest or {}).get("skipped") or [] if s["file"] not in new_names],
        "complete": False,
    }
    _write_manifest(data_dir, manifest)  # before importing: a resumed run is checked too
    done_before = store.done_units()
    _, skipped = import_raw(new, store, dtype=RELEASE_DTYPE, progress=progress)
    imported_now = len(store.done_units() - done_before)
    for path, reason in skipped:
        match = RAW_NAME.match(path.name)
        manifest["skipped"].append(
            {
                "file": path.name,
                "model": match["model"].replace("_", "-") if match else "",
                "step": int(match["step"]) if match else -1,
                "reason": reason,
            }
        )
    manifest["skipped"].sort(key=lambda s: (s["model"], s["step"], s["file"]))
    manifest["files"] = {
        p.name: sha256_file(p) for p in (store.table_path, store.settings_path) if p.is_file()
    }
    manifest["complete"] = True
    _write_manifest(data_dir, manifest)
    return _read(store, _info(manifest, imported_now))


def _read(store: ActivationStore, info: ReleaseInfo) -> tuple[pd.DataFrame, ReleaseInfo]:
    table = read_table(store.table_path)
    record(store.dir / "manifest.json", "read")
    table.attrs.update(synthetic=info.synthetic, release=info.label)
    return table, info


def release_steps(
    data_dir: str | Path = "data",
    paper_data: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> dict[str, list[int]]:
    """The release's checkpoints per model (``"pythia-1b"``), malformed files included.

    From the file names of ``paper_data`` when given, else of the imported release's
    manifest, else of the downloaded release.
    """
    if paper_data is not None:
        names = list(_source_files(Path(paper_data).expanduser()))
    elif (manifest := _read_manifest(data_dir)) is not None and manifest.get("sources"):
        names = list(manifest["sources"])
    else:
        names = list(_source_files(download_release(cache_dir=cache_dir)))
    steps: dict[str, set[int]] = {}
    for name in names:
        match = RAW_NAME.match(name)
        if match:
            model = match["model"].replace("_", "-")
            steps.setdefault(model, set()).add(int(match["step"]))
    return {m: sorted(s) for m, s in sorted(steps.items())}


def release_summary(table: pd.DataFrame, info: ReleaseInfo) -> pd.DataFrame:
    """Per model: layers, checkpoints imported and skipped, and the release's count as
    third-party readers list it (reference ``release_checkpoints``), for the page."""
    counts = reference.table("release_checkpoints")["value"].rename(index=str.lower)
    g = table.groupby("model")
    out = pd.DataFrame({"n_layers": g["layer"].max(), "checkpoints": g["step"].nunique()})
    skipped = info.skipped.groupby("model").size()
    out["skipped_files"] = [int(skipped.get(m, 0)) for m in out.index]
    out["first_step"] = g["step"].min()
    out["last_step"] = g["step"].max()
    out["release_listed"] = [
        counts.get(m.removeprefix("pythia-"), pd.NA) for m in out.index.astype(str)
    ]
    order = {f"pythia-{m.lower()}": i for i, m in enumerate(reference.values()["models"])}
    out = out.sort_index(key=lambda idx: idx.map(lambda m: order.get(m, len(order))))
    out.attrs["synthetic"] = info.synthetic
    return out.reset_index()
