"""The overlay's CT+labels sampler equals the engine's reslicer: CT nearest (the overlay's fast
path) or linear (the fused CT view), labels always nearest."""
from __future__ import annotations

import numpy as np
import pytest

from gui.views.plane_sampler import OUTSIDE_HU, PlaneSampler
from registration.spatial.reslice import Reslicer, plane_pixel_to_lps
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import LabelMap, Volume


def _case():
    rng = np.random.default_rng(11)
    direction = rigid_matrix([0, 0, 90, 0, 0, 0])[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    ct = Volume(rng.integers(-1024, 3000, (30, 40, 50)).astype(np.int16), (0.8, 0.9, 1.5), (5, -3, 2), direction)
    labels = LabelMap(rng.integers(0, 300, (30, 40, 50)).astype(np.int16), ct.spacing, ct.origin, direction,
                      names={"liver": 1, "lesion_1": 299})
    return ct, labels


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_matches_engine_reslicer_on_oblique_planes(interpolation):
    ct, labels = _case()
    sampler = PlaneSampler(ct, labels)
    ref_ct = Reslicer(ct, default=OUTSIDE_HU, interpolator=interpolation)
    ref_lab = Reslicer(labels, default=0, interpolator="nearest")
    centre = ct.index_to_lps(np.array(ct.shape_ijk) / 2.0)
    rng = np.random.default_rng(5)
    for _ in range(5):
        r = rigid_matrix(np.r_[rng.uniform(-60, 60, 3), 0, 0, 0])[:3, :3]
        m = plane_pixel_to_lps(centre + rng.uniform(-5, 5, 3), r[:, 0], r[:, 1], (70, 50), (0.7, 0.6))
        hu, lab = sampler.sample(m, (50, 70)) if interpolation == "nearest" else \
            (sampler.sample_ct(m, (50, 70), "linear"), sampler.sample_labels(m, (50, 70)))
        assert np.array_equal(hu, ref_ct.reslice(m, (50, 70)).image)
        assert np.array_equal(lab, ref_lab.reslice(m, (50, 70)).image.astype(np.int32))
        assert (hu == OUTSIDE_HU).any() and (hu > OUTSIDE_HU).any()   # the plane leaves the volume
        inside = hu > OUTSIDE_HU
        # Linear values lie between voxel values (not only the voxels' own); nearest are voxel values.
        on_voxels = np.isin(hu[inside], ct.array)
        assert on_voxels.all() if interpolation == "nearest" else not on_voxels.all()


def test_labels_on_another_grid_are_placed_by_position():
    ct, labels = _case()
    # The same label values stored flipped along i with the origin moved: same physical place.
    d = labels.direction.copy()
    d[:, 0] *= -1
    origin = labels.index_to_lps([labels.shape_ijk[0] - 1, 0, 0])
    flipped = LabelMap(labels.array[:, :, ::-1].copy(), labels.spacing, origin, d, labels.names)
    m = plane_pixel_to_lps(ct.index_to_lps([25, 20, 15]), [1, 0, 0], [0, 1, 0], (30, 30), (0.5, 0.5))
    assert np.array_equal(PlaneSampler(ct, flipped).sample(m, (30, 30))[1],
                          PlaneSampler(ct, labels).sample(m, (30, 30))[1])
