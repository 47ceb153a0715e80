"""The paper's release as a suite: the stand-in, the import, the download, the Pythia suite."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from massive_activations import provenance, reference
from massive_activations.curve import eq9
from massive_activations.datasets import release as release_mod
from massive_activations.datasets.activations import architectures_table, suite_activations
from massive_activations.datasets.release import (
    RELEASE_PATTERNS,
    RELEASE_REPO,
    RELEASE_REVISION,
    ReleaseError,
    import_release,
    release_info,
    release_steps,
    release_summary,
)
from massive_activations.datasets.standin import (
    SMOKE,
    SYNTHETIC_MARKER,
    is_synthetic,
    layer_regimes,
    main,
    standin_curves,
    standin_stats,
    write_standin,
)
from massive_activations.measurement.raw_import import MalformedRawFile, read_raw_file
from massive_activations.measurement.store import read_table
from massive_activations.prediction.features import features_table, suite_architectures

ROOT = Path(__file__).resolve().parents[1]
ARCH = reference.table("pythia_architectures").rename(index=str.lower)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ratio_of_means(files) -> pd.DataFrame:
    """(layer x step) ratio of means, from the files through the release's reader."""
    table = pd.concat([read_raw_file(p) for p in files])
    g = table.groupby(["layer", "step"])[["top1", "median"]].mean()
    return (g["top1"] / g["median"]).unstack("step")


@pytest.fixture(scope="module")
def full_standin(tmp_path_factory):
    """The paper-shaped stand-in: nine models, the release's checkpoint counts."""
    folder = tmp_path_factory.mktemp("release") / "standin"
    return write_standin(folder, seed=0)


@pytest.fixture
def small_standin(tmp_path):
    return write_standin(tmp_path / "release", sizes=SMOKE["sizes"], checkpoints=6, seed=3)


# ------------------------------------------------------------------------- the stand-in


def test_standin_has_the_release_shape(full_standin):
    counts = reference.table("release_checkpoints")["value"].rename(index=str.lower)
    folder = full_standin.folder
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(
        f"pythia_{s}" for s in ARCH.index
    )
    for size, row in ARCH.iterrows():
        files = sorted((folder / f"pythia_{size}" / "stats").glob("exp2_*"))
        malformed = 1 if size == "1b" else 0
        assert len(files) == counts[size] + malformed, size
        good = [p for p in files if p.name != "exp2_pythia_1b_step0"]
        for path in good[:: max(1, len(good) // 4)]:
            data = np.asarray(eval(path.read_text()))
            assert data.shape == (10, 4, row["n_layers"]), path.name
            assert (data.astype(np.float16).astype(float) == data).all()  # exact fp16 values
    with pytest.raises(MalformedRawFile, match="not a numeric Python literal"):
        read_raw_file(folder / "pythia_1b" / "stats" / "exp2_pythia_1b_step0")
    # the release's (model, checkpoint, layer) rows, as third-party readers count them
    assert full_standin.n_layer_rows == reference.entry("release_checkpoints")["total_rows"]
    assert len(full_standin.files) == 336 and len(full_standin.malformed) == 1
    assert (folder / SYNTHETIC_MARKER).is_file() and is_synthetic(folder / "pythia_1b")


def test_standin_trajectories_follow_eq9_with_the_paper_pattern(full_standin):
    folder = full_standin.folder
    # Pythia-1B's early-peak and log-rise layers as the paper names them (Section 5)
    pattern = reference.entry("layer_patterns")["pythia_1b"]
    regimes = layer_regimes(16)
    assert [i + 1 for i, r in enumerate(regimes) if r == "early_peak"] == pattern["early_peak"]
    finals = {}
    for size in ("14m", "1b", "12b"):
        files = [p for p in sorted((folder / f"pythia_{size}" / "stats").glob("exp2_*"))]
        ratio = _ratio_of_means([p for p in files if p.name != "exp2_pythia_1b_step0"])
        steps = ratio.columns.to_numpy()
        truth = np.stack(
            [eq9(steps, **standin_curves(size)[la]) for la in ratio.index]
        )  # independent of the noise and the file format
        resid = np.log(ratio.to_numpy() / truth)
        assert np.median(np.abs(resid)) < 0.05
        # the per-checkpoint component shared by every layer: the layers' mean residual moves
        assert resid.mean(axis=0).std() > 0.015
        for layer, regime in zip(ratio.index, layer_regimes(len(ratio)), strict=True):
            series = ratio.loc[layer]
            if regime == "early_peak":
                assert series.idxmax() < 60_000 and series.iloc[-1] < 0.7 * series.max()
            else:
                assert series.iloc[-1] > 0.85 * series.max()
        assert ratio.iloc[:, 0].max() < 50  # absent at initialisation
        finals[size] = ratio.iloc[:, -1].max()
    assert 50 < finals["14m"] < 500 and 1_000 < finals["12b"] < 20_000
    assert finals["14m"] < finals["1b"] < finals["12b"]


def test_standin_is_deterministic_and_never_overwrites_real_data(tmp_path):
    a = write_standin(tmp_path / "a", sizes=["14m"], checkpoints=4, seed=1)
    b = write_standin(tmp_path / "b", sizes=["pythia-14m"], checkpoints=4, seed=1)
    c = write_standin(tmp_path / "c", sizes=["14m"], checkpoints=4, seed=2)
    assert [_sha(p) for p in a.files] == [_sha(p) for p in b.files]
    assert [_sha(p) for p in a.files] != [_sha(p) for p in c.files]
    np.testing.assert_array_equal(
        standin_stats("14m", a.steps["pythia-14m"], 1).shape, (4, 10, 4, 6)
    )
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_standin(a.folder, sizes=["14m"], checkpoints=4)
    write_standin(a.folder, sizes=["70m"], checkpoints=3, overwrite=True)
    assert sorted(p.name for p in a.folder.iterdir()) == [SYNTHETIC_MARKER, "pythia_70m"]
    real = tmp_path / "real"
    (real / "pythia_14m").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="no stand-in marker"):
        write_standin(real, overwrite=True)
    with pytest.raises(ValueError, match="Unknown Pythia size '13m'"):
        write_standin(tmp_path / "d", sizes=["13m"])
    assert main([str(tmp_path / "e"), "--smoke"]) == 0
    assert main([str(tmp_path / "e"), "--smoke"]) == 2


def test_no_stand_in_is_committed():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [p for p in tracked if Path(p).name == SYNTHETIC_MARKER]
    for path in (p for p in tracked if p.startswith("data/") and p.endswith("manifest.json")):
        assert not json.loads((ROOT / path).read_text()).get("synthetic"), path


# ----------------------------------------------------------------- the suite "paper"


def test_paper_suite_imports_once_and_is_flagged_synthetic(small_standin, tmp_path):
    data = tmp_path / "data"
    table = suite_activations("paper", data, paper_data=small_standin.folder)
    assert table.attrs["synthetic"] is True and "SYNTHETIC" in table.attrs["release"]
    assert len(table) == small_standin.n_rows
    assert set(table.dtype) == {"float16"} and set(table.variant) == {"raw"}
    assert set(table.suite) == {"paper"}
    # values: the generator's, through the files and the importer
    steps = small_standin.steps["pythia-70m"]
    stats = standin_stats("70m", steps, seed=3)
    row = table[(table.model == "pythia-70m") & (table.step == steps[2])]
    row = row[(row.layer == 5) & (row.sequence == 7)].iloc[0]
    np.testing.assert_array_equal(row[["top1", "top2", "top3", "median"]], stats[2, 7, :, 4])

    manifest = json.loads((data / "paper" / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["complete"] is True
    assert {n: e["sha256"] for n, e in manifest["sources"].items()} == {
        p.name: _sha(p) for p in small_standin.files
    }
    assert manifest["files"]["activations.parquet"] == _sha(data / "paper" / "activations.parquet")
    assert provenance.verify_manifest(data / "paper") == []
    info = release_info(data)
    assert info.skipped[["file", "model", "step"]].values.tolist() == [
        ["exp2_pythia_1b_step0", "pythia-1b", 0]
    ]
    assert "not a numeric Python literal" in info.skipped["reason"].iloc[0]
    summary = release_summary(table, info).set_index("model")
    assert summary.loc["pythia-1b", "skipped_files"] == 1
    assert summary["checkpoints"].tolist() == [6, 6, 6]
    assert summary.loc["pythia-1b", "n_layers"] == ARCH.loc["1b", "n_layers"]

    # a second call imports nothing; without the folder it reads the import
    mtime = (data / "paper" / "activations.parquet").stat().st_mtime_ns
    again, info = import_release(data, small_standin.folder)
    assert info.imported_now == 0 and again.equals(
        read_table(data / "paper" / "activations.parquet")
    )
    assert (data / "paper" / "activations.parquet").stat().st_mtime_ns == mtime
    alone = suite_activations("paper", data, checkpoints=[steps[-1]])
    assert set(alone.step) == {steps[-1]} and alone.attrs["synthetic"] is True


def test_an_interrupted_import_resumes(small_standin, tmp_path, monkeypatch):
    from massive_activations.measurement import raw_import

    real, calls = raw_import.read_raw_file, []

    def dies_at_the_fifth(path):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(raw_import, "read_raw_file", dies_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        import_release(tmp_path / "data", small_standin.folder)
    monkeypatch.setattr(raw_import, "read_raw_file", real)
    parts = sorted((tmp_path / "data" / "paper" / "parts").rglob("*.parquet"))
    assert (
        len(parts) == 4
        and not json.loads((tmp_path / "data" / "paper" / "manifest.json").read_text())["complete"]
    )
    mtimes = [p.stat().st_mtime_ns for p in parts]
    table, info = import_release(tmp_path / "data", small_standin.folder)
    assert info.imported_now == len(small_standin.files) - 1 - 4
    assert [p.stat().st_mtime_ns for p in parts] == mtimes  # not imported twice
    fresh, _ = import_release(tmp_path / "fresh", small_standin.folder)
    pd.testing.assert_frame_equal(table, fresh)


def test_other_contents_are_refused(small_standin, tmp_path):
    data = tmp_path / "data"
    import_release(data, small_standin.folder)
    changed = tmp_path / "changed"
    shutil.copytree(small_standin.folder, changed)
    victim = next((changed / "pythia_14m" / "stats").glob("exp2_*"))
    victim.write_text(victim.read_text().replace("[[", "[[ ", 1))
    with pytest.raises(ReleaseError, match=r"other contents of exp2_pythia_14m.*Delete"):
        import_release(data, changed)
    unmarked = tmp_path / "unmarked"
    shutil.copytree(small_standin.folder, unmarked)
    for marker in unmarked.rglob(SYNTHETIC_MARKER):
        marker.unlink()
    assert not is_synthetic(unmarked)
    with pytest.raises(ReleaseError, match="synthetic stand-in and the files given are the"):
        import_release(data, unmarked)
    with pytest.raises(ReleaseError, match="No release folder at"):
        import_release(tmp_path / "d2", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="holds no exp2_"):
        import_release(tmp_path / "d2", tmp_path / "empty")
    with pytest.raises(ReleaseError, match="No release imported"):
        release_info(tmp_path / "d3")
    with pytest.raises(ValueError, match="paper_data is the release's folder"):
        suite_activations("smoke", data, paper_data=small_standin.folder)


def _hub_dataset_cache(root: Path, release: Path) -> Path:
    """The release's files laid out as the hub's dataset cache: blobs, a snapshot of
    symbolic links at the pinned commit, and refs/main."""
    repo = root / ("datasets--" + RELEASE_REPO.replace("/", "--"))
    snapshot = repo / "snapshots" / RELEASE_REVISION
    for path in sorted(release.rglob("*")):
        if path.is_file():
            blob = repo / "blobs" / _sha(path)
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, blob)
            link = snapshot / path.relative_to(release)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(RELEASE_REVISION)
    return root


def test_download_path_offline_from_a_hub_shaped_cache(small_standin, tmp_path, monkeypatch):
    import huggingface_hub

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    cache = _hub_dataset_cache(tmp_path / "hf", small_standin.folder)
    calls = []
    real = huggingface_hub.snapshot_download

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    table = suite_activations("paper", tmp_path / "data", cache_dir=cache)
    assert calls == [
        {
            "repo_id": RELEASE_REPO,
            "repo_type": "dataset",
            "revision": RELEASE_REVISION,
            "allow_patterns": list(RELEASE_PATTERNS),
            "cache_dir": str(cache),
        }
    ]
    assert len(table) == small_standin.n_rows and table.attrs["synthetic"] is True
    info = release_info(tmp_path / "data")
    assert info.origin["repo_id"] == RELEASE_REPO and info.origin["revision"] == RELEASE_REVISION
    # the import is done: no second look-up
    suite_activations("paper", tmp_path / "data", cache_dir=cache)
    assert len(calls) == 1
    with pytest.raises(
        ReleaseError, match=r"not in the Hugging Face cache and HF_HUB_OFFLINE=1.*paper_data"
    ):
        suite_activations("paper", tmp_path / "other", cache_dir=tmp_path / "empty-cache")


def test_paper_architectures_and_features_come_from_the_reference():
    archs = architectures_table("paper").set_index("model")
    assert archs["n_layers"].sum() == reference.entry("headline_mean_r2")["n_layers"]
    for size, row in ARCH.iterrows():
        assert archs.loc[f"pythia-{size}", ["n_layers", "d_model", "n_heads", "d_ff"]].tolist() == (
            row[["n_layers", "d_model", "n_heads", "d_ff"]].astype(int).tolist()
        )
    features = features_table(suite_architectures("paper").values())
    assert len(features) == 188
    one = features[(features.model == "pythia-1b") & (features.layer == 4)].iloc[0]
    assert one["l_over_L"] == (4 - 1) / (16 - 1) and one["H_over_d"] == 8 / 2048
    both = suite_architectures("pythia")
    assert len(both) == 18 and both["pythia-70m-deduped"].d_model == 512
    assert len(architectures_table("pythia")) == 18


# ------------------------------------------------------------------ the suite "pythia"


@pytest.fixture(scope="module")
def pythia_hub(tmp_path_factory, make_tiny_neox):
    """A hub-shaped cache of tiny GPT-NeoX stand-ins for pythia-14m and pythia-70m-deduped
    at step0 and step1000 (seed 100 i + step), each snapshot with a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from massive_activations.datasets.activations import evaluation_text

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [evaluation_text()[:200_000]],
        trainers.WordLevelTrainer(vocab_size=128, special_tokens=["[UNK]"]),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    cache = tmp_path_factory.mktemp("pythia_hub")
    for i, name in enumerate(("pythia-14m", "pythia-70m-deduped")):
        repo = cache / f"models--EleutherAI--{name}"
        (repo / "refs").mkdir(parents=True)
        for step in (0, 1000):
            commit = hashlib.sha1(f"{name} step{step}".encode()).hexdigest()
            make_tiny_neox(100 * i + step).save_pretrained(repo / "snapshots" / commit)
            tokenizer.save_pretrained(repo / "snapshots" / commit)
            (repo / "refs" / f"step{step}").write_text(commit)
    return cache


def test_pythia_suite_extracts_the_release_checkpoints_into_one_table(
    pythia_hub, make_tiny_neox, tmp_path, monkeypatch
):
    standin = write_standin(
        tmp_path / "release", sizes=["14m", "70m"], checkpoints={"14m": [0, 1000], "70m": [1000]}
    )
    assert release_steps(paper_data=standin.folder) == {
        "pythia-14m": [0, 1000],
        "pythia-70m": [1000],
    }
    kwargs = dict(
        pythia_sizes=["14m", "70m-deduped"],
        checkpoints="release",
        paper_data=standin.folder,
        n_sequences=2,
        seq_len=8,
        cache_dir=pythia_hub,
    )
    table = suite_activations("pythia", tmp_path / "data", **kwargs)
    keys = sorted(set(zip(table.model, table.step, strict=True)))
    assert keys == [("pythia-14m", 0), ("pythia-14m", 1000), ("pythia-70m-deduped", 1000)]
    assert set(table.suite) == {"pythia"} and set(table.variant) == {"raw"}
    assert len(table) == 3 * 2 * 2  # (model, step) x layers x sequences
    # each row is the checkpoint's own measurement: the 14m step-1000 weights (seed 1000)
    from massive_activations.datasets.activations import _eval_ids
    from massive_activations.measurement.measure import measure_model
    from massive_activations.measurement.sources import pythia_checkpoints

    settings = json.loads((tmp_path / "data" / "pythia" / "settings.json").read_text())
    assert settings["variants"]["raw"]["n_sequences"] == 2
    first = pythia_checkpoints("14m", [0], cache_dir=pythia_hub)[0]
    direct = measure_model(make_tiny_neox(1000), _eval_ids(first, 2, 8))
    ours = table[(table.model == "pythia-14m") & (table.step == 1000)]
    np.testing.assert_allclose(
        ours.sort_values(["layer", "sequence"]).top1, direct.sort_values(["layer", "sequence"]).top1
    )
    # resumable: a second call loads no checkpoint
    from massive_activations.measurement import sources

    def no_load(self, **kw):
        raise AssertionError(f"{self.key} was loaded again")

    monkeypatch.setattr(sources.Checkpoint, "load", no_load)
    again = suite_activations("pythia", tmp_path / "data", **kwargs)
    pd.testing.assert_frame_equal(again, table)


def test_pythia_suite_schedules_and_errors(pythia_hub, tmp_path):
    from massive_activations.datasets.activations import pythia_suite_checkpoints

    full = pythia_suite_checkpoints(["14m", "160m"], "all", cache_dir=pythia_hub)
    assert len(full) == 2 * 154 and full[0].model == "pythia-14m"
    assert len(pythia_suite_checkpoints(None, "log")) == 9 * 11
    with pytest.raises(ValueError, match="lists pythia-14m twice"):
        pythia_suite_checkpoints(["14m", "pythia-14m"], "log")
    with pytest.raises(ValueError, match="Unknown Pythia model '13m'"):
        pythia_suite_checkpoints(["13m"], "log")
    standin = write_standin(tmp_path / "r", sizes=["14m"], checkpoints=[0, 1000])
    with pytest.raises(ValueError, match=r"release holds no checkpoints of pythia-160m"):
        pythia_suite_checkpoints(["160m"], "release", paper_data=standin.folder)
    with pytest.raises(ReleaseError, match="Pass paper_data"):
        pythia_suite_checkpoints(["14m"], "release", data_dir=tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="pythia_sizes selects models of the suite 'pythia'"):
        suite_activations("paper", tmp_path, pythia_sizes=["14m"])
    # steps the cache lacks: the loader's error names the cached revisions
    from massive_activations.measurement.sources import CheckpointError

    with pytest.raises(CheckpointError, match="cached revisions: step0, step1000"):
        suite_activations(
            "pythia", tmp_path / "d", pythia_sizes=["14m"], checkpoints=[0, 2000],
            n_sequences=2, seq_len=8, cache_dir=pythia_hub,
        )  # fmt: skip


def test_release_module_constants_come_from_the_reference():
    entry = reference.entry("release")
    assert (release_mod.RELEASE_REPO, release_mod.RELEASE_REVISION) == (
        entry["repo_id"],
        entry["revision"],
    )
    assert len(RELEASE_REVISION) == 40 and int(RELEASE_REVISION, 16) >= 0


def test_more_files_of_the_same_release_are_added(small_standin, tmp_path):
    data = tmp_path / "data"
    first, info = import_release(data, small_standin.folder / "pythia_14m")
    assert set(first.model) == {"pythia-14m"} and info.imported_now == 6
    derived = data / "paper" / "fits.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(derived)
    provenance.update_manifest(data / "paper", derived)
    table, info = import_release(data, small_standin.folder)
    assert info.imported_now == 6 + 6  # 70m and 1b (its malformed file skipped)
    assert set(table.model) == {"pythia-14m", "pythia-70m", "pythia-1b"}
    assert len(table) == small_standin.n_rows
    assert provenance.verify_manifest(data / "paper") == []  # fits.parquet still listed
    assert len(info.skipped) == 1
