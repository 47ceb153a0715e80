"""Reading the regrowth data folder (and building it when asked).

:func:`regrowth_data` is what the chapter calls: the committed ``data/regrowth/`` when it is
there and ``reuse`` is true, else the experiment is run now
(:func:`massive_activations.regrowth.run.build_regrowth`) and its folder read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from massive_activations import provenance, registry
from massive_activations.regrowth.config import RegrowthConfig, folder_name, get_config

__all__ = ["FILES", "RegrowthData", "read_regrowth", "regrowth_data"]

#: The files of a regrowth data folder that its manifest lists.
FILES = (
    "regrowth_activations.parquet",
    "regrowth_log.parquet",
    "regrowth_locate.parquet",
    "regrowth_writer.parquet",
    "regrowth_eval_tokens.npy",
    "regrowth_config.json",
)


@dataclass
class RegrowthData:
    """The tables of a regrowth data folder.

    Attributes
    ----------
    folder : Path
    activations : pandas.DataFrame
        Every measurement of both runs (``regrowth_activations.parquet``).
    log : pandas.DataFrame
        Every step's training loss, and the held-out loss at the measured steps.
    locate : pandas.DataFrame
        Where the massive activation is written (:func:`~massive_activations.regrowth.locate.locate`).
    writer_units : pandas.DataFrame
        :func:`~massive_activations.regrowth.locate.writer_units`.
    record : dict
        ``regrowth_config.json``: configuration, writer, ablation, text.
    manifest : dict
    """

    folder: Path
    activations: pd.DataFrame
    log: pd.DataFrame
    locate: pd.DataFrame
    writer_units: pd.DataFrame
    record: dict
    manifest: dict

    @property
    def writer(self) -> dict:
        """``layer``, ``submodule``, ``position``, ``channel``, ``value``, ``peak``..."""
        return self.record["writer"]

    @property
    def config(self) -> RegrowthConfig:
        """The configuration the folder was built with."""
        fields = {k: v for k, v in self.record["config"].items() if k != "schedule"}
        return RegrowthConfig(**fields)


def read_regrowth(folder: Path | str) -> RegrowthData:
    """Read a regrowth data folder, checking it against its manifest.

    Raises
    ------
    FileNotFoundError
        When the folder or a file is missing (the message says how to build it).
    ValueError
        When a file differs from its manifest.
    """
    folder = Path(folder)
    root, name = folder.parent, folder.name
    problems = provenance.verify_manifest(folder) if folder.is_dir() else []
    missing = [f for f in FILES if not (folder / f).is_file()]
    if not folder.is_dir() or missing:
        raise FileNotFoundError(
            f"No complete regrowth data folder at {folder} (missing {missing or 'the folder'}): "
            "run `make regrowth` (or `python -m massive_activations.regrowth.run`; "
            "resumable), or build it from the chapter with reuse=False."
        )
    if problems:
        raise ValueError(
            "The regrowth data folder does not match its manifest: " + "; ".join(problems)
        )
    record_path = folder / "regrowth_config.json"
    provenance.record(record_path, "read")
    manifest_path = folder / "manifest.json"
    provenance.record(manifest_path, "read")
    provenance.record(folder / "regrowth_eval_tokens.npy", "read")
    return RegrowthData(
        folder=folder,
        activations=registry.read("regrowth_activations.parquet", root, name),
        log=registry.read("regrowth_log.parquet", root, name),
        locate=registry.read("regrowth_locate.parquet", root, name),
        writer_units=registry.read("regrowth_writer.parquet", root, name),
        record=json.loads(record_path.read_text()),
        manifest=json.loads(manifest_path.read_text()),
    )


def regrowth_data(
    config: str | RegrowthConfig = "default",
    data_dir: Path | str = "data",
    *,
    reuse: bool = True,
    cache: Path | str | None = None,
    progress: bool = False,
) -> RegrowthData:
    """The regrowth data of a configuration: read, or built now and read.

    Parameters
    ----------
    config : str or RegrowthConfig
        ``"default"`` (``<data_dir>/regrowth``), ``"smoke"`` (``<data_dir>/regrowth-smoke``)...
    data_dir : path
        Parent of the data folders.
    reuse : bool
        Read the existing folder when it is there; False rebuilds it (the runs' caches are
        reused, so a finished run is not trained again).
    cache : path, optional
        Cache root for a build.
    progress : bool
        Progress bars while building.
    """
    config = get_config(config)
    folder = Path(data_dir) / folder_name(config)
    if not (reuse and (folder / "manifest.json").is_file()):
        from massive_activations.regrowth.run import build_regrowth

        build_regrowth(config, data_dir, cache=cache, progress=progress)
    return read_regrowth(folder)
