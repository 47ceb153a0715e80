import pytest

from massive_activations.schedule import PYTHIA_FINAL_STEP, pythia_steps, scaled_schedule


def test_pythia_schedule_has_154_revisions():
    steps = pythia_steps()
    assert len(steps) == 154
    assert steps[:12] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    assert steps[-1] == PYTHIA_FINAL_STEP
    assert steps == sorted(set(steps))


def test_scaled_schedule_reproduces_pythia_shape():
    assert scaled_schedule(143_000, 143) == pythia_steps()


@pytest.mark.parametrize("final, n", [(2000, 20), (4600, 23), (50, 5), (7, 7)])
def test_scaled_schedule_includes_zero_and_final(final, n):
    steps = scaled_schedule(final, n)
    assert steps[0] == 0
    assert steps[-1] == final
    assert steps == sorted(set(steps))
    assert all(s <= final for s in steps)


def test_scaled_schedule_rejects_nonsense():
    with pytest.raises(ValueError, match="final_step and n_linear must be >= 1"):
        scaled_schedule(0, 10)
