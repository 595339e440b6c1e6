"""Schedules and respacings, as the official SpacedDiffusion builds them."""
import numpy as np
import pytest

from testdata import golden
from diffusion_face_restore.diffusion.schedule import Schedule, space_timesteps


def test_ddim250_is_every_fourth_step_and_250_is_not():
    assert space_timesteps(1000, "ddim250") == list(range(0, 1000, 4))
    fractional = space_timesteps(1000, "250")
    assert fractional[:42] == list(range(0, 168, 4)) and fractional[42] == 169 and fractional[100] == 401
    assert fractional[-1] == 999


def test_dr2_100_step_respacing():
    steps = space_timesteps(1000, "100")
    assert [steps[k] for k in (22, 35, 42, 60, 65, 99)] == [222, 353, 424, 605, 656, 999]
    assert steps == [round(k * 999 / 99) for k in range(100)]


def test_sectioned_respacing():
    steps = space_timesteps(1000, "10,5")
    assert len(steps) == 15 and steps[:10] == [round(k * 499 / 9) for k in range(10)] and steps[10] == 500


@pytest.mark.parametrize("bad", ["ddim333", "abc", "0", "2000"])
def test_bad_respacings_are_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="respacing"):
        Schedule(bad)


def test_difface_schedule_equals_the_official_arrays():
    schedule = Schedule("ddim250")
    assert np.array_equal(schedule.timestep_map, golden("difface_reduced_aligned_default_schedule", "schedule_respaced_timestep_map.npy"))
    np.testing.assert_array_equal(schedule.alphas_cumprod, golden("difface_reduced_aligned_default_schedule", "schedule_respaced_alphas_cumprod.npy"))
    np.testing.assert_array_equal(schedule.alphas_cumprod_prev, golden("difface_reduced_aligned_default_schedule", "schedule_respaced_alphas_cumprod_prev.npy"))
    assert abs(schedule.alphas_cumprod[100] - 0.193572) < 1e-6  # abar_400 of the reference


def test_dr2_schedule_equals_the_official_arrays():
    schedule = Schedule("100")
    case = "dr2_reduced_N4_tau22"
    assert np.array_equal(schedule.timestep_map, golden(case, "schedule_timestep_map.npy"))
    np.testing.assert_array_equal(schedule.betas, golden(case, "schedule_betas.npy"))
    np.testing.assert_array_equal(schedule.alphas_cumprod, golden(case, "schedule_alphas_cumprod.npy"))
    np.testing.assert_array_equal(schedule.posterior_log_variance_clipped, golden(case, "schedule_posterior_log_variance_clipped.npy"))


def test_tau_scale_maps_to_the_same_relative_step():
    assert Schedule("100").index_for_fraction(22) == 22
    ddim = Schedule("ddim250")
    assert int(ddim.timestep_map[ddim.index_for_fraction(22)]) == 220
