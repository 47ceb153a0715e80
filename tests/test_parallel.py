"""run_jobs: results in the order of the jobs, the same in one process or two, a labelled bar."""

import time

import pytest

from massive_activations.parallel import run_jobs


def _power(base, exponent, *, offset=0, pause=0.0):
    time.sleep(pause * (5 - base))  # the first jobs finish last in parallel
    return base**exponent + offset


JOBS = [(b, 2) for b in range(5)]


def test_results_follow_the_jobs_order_and_take_the_keywords():
    assert run_jobs(_power, JOBS) == [0, 1, 4, 9, 16]
    assert run_jobs(_power, JOBS, offset=10) == [10, 11, 14, 19, 26]
    assert run_jobs(_power, iter([(3, 3)])) == [27]
    assert run_jobs(_power, []) == []


@pytest.mark.processes
def test_two_processes_give_the_same_list_in_the_same_order():
    one = run_jobs(_power, JOBS, offset=1, pause=0.05)
    assert run_jobs(_power, JOBS, n_jobs=2, offset=1, pause=0.05) == one == [1, 2, 5, 10, 17]


@pytest.mark.parametrize("bad", [0, 1.5, "2", True, None])
def test_a_bad_n_jobs_names_the_fix(bad):
    with pytest.raises(ValueError, match=r"n_jobs=.*nonzero integer"):
        run_jobs(_power, JOBS, n_jobs=bad)


def test_the_bar_shows_its_label_and_count_only_when_asked(capfd):
    run_jobs(_power, JOBS, desc="squaring", unit="sq")
    assert capfd.readouterr().err == ""
    run_jobs(_power, JOBS, progress=True, desc="squaring", unit="sq")
    err = capfd.readouterr().err
    assert "squaring" in err and "5/5" in err and "sq/s" in err
