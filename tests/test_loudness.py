import numpy as np
import pytest

from audio.loudness import FLOOR_DB, Baseline, NoiseFloor, RollingPower, db, power


def test_full_scale_square_is_0_dbfs_and_sine_is_minus_3():
    assert db(power(np.ones(512, np.float32))) == pytest.approx(0.0)
    sine = np.sin(np.linspace(0, 2 * np.pi * 20, 512, endpoint=False)).astype(np.float32)
    assert db(power(sine)) == pytest.approx(-3.01, abs=0.01)


def test_silence_reads_as_the_floor_not_minus_infinity():
    assert db(power(np.zeros(512, np.float32))) == FLOOR_DB


def test_rolling_power_is_a_power_mean_over_the_window_only():
    r = RollingPower(4)
    for p in (1.0, 1.0, 1.0, 1.0, 0.01, 0.01):
        r.push(p)
    assert r.full
    assert r.db == pytest.approx(db((1 + 1 + 0.01 + 0.01) / 4))


def test_baseline_averages_at_first_then_moves_slowly():
    b = Baseline(tau_frames=100)
    for v in (-20.0, -30.0):
        b.push(v)
    assert b.value == pytest.approx(-25.0)
    for _ in range(98):
        b.push(-25.0)
    b.push(-15.0)  # one loud frame moves a settled baseline by a hundredth of the step
    assert b.value == pytest.approx(-24.9)


def test_noise_floor_drops_at_once_and_creeps_up():
    n = NoiseFloor(rise_db=0.5)
    assert n.push(-40.0) == -40.0
    assert n.push(-60.0) == -60.0
    assert n.push(-20.0) == -59.5
