"""Fan mask: geometry builder and detection on synthetic (known answer) and real frames."""
from __future__ import annotations

import numpy as np
import pytest

from registration.spatial.errors import InputError
from registration.spatial.fan_mask import convex_fan_mask, detect_fan_mask, linear_fan_mask
from registration.io.seq_mha_read import read_sequence


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def speckle_frames(mask, n, rng, background=None):
    rows, cols = mask.shape
    frames = np.zeros((n, rows, cols), np.uint8)
    for i in range(n):
        tissue = np.clip(rng.rayleigh(40, (rows, cols)), 0, 255)
        frame = np.where(mask, tissue, 0 if background is None else rng.integers(0, background, (rows, cols)))
        frames[i] = frame.astype(np.uint8)
    return frames


def test_convex_fan_geometry():
    m = convex_fan_mask((200, 300), apex_rc=(-40, 150), r_min_px=50, r_max_px=220, half_angle_deg=35)
    assert m[100, 150] and not m[5, 150]               # on the axis: inside; above r_min: outside
    assert m[:, :150].sum() == m[:, 151:][:, ::-1].sum()  # symmetric about the apex column
    # a point at 30 deg is inside, at 40 deg outside (radius 150 from the apex)
    for deg, inside in ((30, True), (40, False)):
        r = -40 + 150 * np.cos(np.radians(deg))
        c = 150 + 150 * np.sin(np.radians(deg))
        assert m[int(round(r)), int(round(c))] == inside
    with pytest.raises(InputError):
        convex_fan_mask((10, 10), (0, 5), 20, 10, 30)


def test_detects_convex_fan_with_anechoic_area_and_overlay():
    rng = np.random.default_rng(1)
    truth = convex_fan_mask((240, 320), apex_rc=(-30, 160), r_min_px=40, r_max_px=250, half_angle_deg=38)
    frames = speckle_frames(truth, 12, rng)
    frames[:, 120:150, 140:190] = 0                    # a cyst: black inside the fan
    frames[:, 5:15, 5:60] = 255                        # static text outside the fan
    found = detect_fan_mask(frames)
    assert iou(found, truth) > 0.97
    assert found[135, 165]                             # the cyst is inside
    assert not found[10, 30]                           # the text is not


def test_detects_linear_probe_rectangle_on_noisy_background():
    rng = np.random.default_rng(2)
    truth = linear_fan_mask((200, 260), first_col=40, last_col=219, first_row=10, last_row=189)
    frames = speckle_frames(truth, 8, rng, background=4)
    found = detect_fan_mask(frames)
    assert iou(found, truth) > 0.97


def test_single_frame_and_empty_input():
    rng = np.random.default_rng(3)
    truth = convex_fan_mask((120, 160), (-10, 80), 20, 125, 40)
    assert iou(detect_fan_mask(speckle_frames(truth, 1, rng)), truth) > 0.95
    assert detect_fan_mask(np.zeros((0, 4, 5), np.uint8)).all()
    assert detect_fan_mask(np.zeros((3, 4, 5), np.uint8)).sum() == 0   # no signal at all
    with pytest.raises(InputError):
        detect_fan_mask(np.zeros((4, 5), np.uint8))


@pytest.mark.parametrize("parts,frac", [
    (("liver-us", "liver_sweep.igs.mha"), (0.55, 0.75)),
    (("plus", "sequences", "UltrasonixCurvilinearScanConvertedData.igs.mha"), (0.6, 0.8)),
    (("plus", "sequences", "SpinePhantomFreehand.igs.mha"), (0.45, 0.6)),
])
def test_real_fans(shared_data, artifacts_dir, parts, frac):
    sweep = read_sequence(shared_data(*parts))
    mask = sweep.fan_mask
    rows, cols = mask.shape
    assert frac[0] < mask.mean() < frac[1]
    assert mask[rows // 2, cols // 2]
    assert not mask[0, 0] and not mask[0, cols - 1]     # top corners are outside every fan here
    # the mask holds nearly all the signal: few lit pixels outside it
    lit = sweep.frames.max(axis=0) > 30
    assert (lit & ~mask).sum() < 0.02 * lit.sum()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(sweep.frames[len(sweep) // 2], cmap="gray")
    ax.contour(mask, [0.5], colors="r")
    ax.set_title(f"{parts[-1]}: fan {mask.mean():.2f}")
    fig.savefig(artifacts_dir / f"fan_mask_{parts[-1].split('.')[0]}.png", dpi=60)
    plt.close(fig)
