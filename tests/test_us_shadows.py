"""Acoustic shadows in B-mode frames (registration.ultrasound.shadows, issue 18): found behind a
reflector on a convex and a linear probe, not behind an anechoic vessel; the LC2 frames of a
marked sweep leave them out; on the demo's dome sweep (under the ribs and the lung) they are
most of what the CT labels say is behind bone or gas."""
from __future__ import annotations

import json

import numpy as np
import pytest

from registration.ultrasound.shadows import ShadowFinder, drop_shadows, fan_apex, mark_shadows

ROWS, COLS, PX_MM = 240, 320, 0.4


def _convex(apex=(-60.0, 160.0), r0=70.0, r1=290.0, half_deg=35.0):
    """A convex fan mask (apex above the image) and per-pixel (angle deg, radius px)."""
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(float)
    ang = np.degrees(np.arctan2(x - apex[1], y - apex[0]))
    rad = np.hypot(x - apex[1], y - apex[0])
    return (np.abs(ang) <= half_deg) & (rad >= r0) & (rad <= r1), ang, rad


def _frames(fan, ang, rad, n=8, seed=0, shadow=None, vessel=None):
    """Speckle-like tissue with attenuation; ``shadow`` (deg0, deg1, from radius px): a reflector
    then nothing; ``vessel`` (angle deg, radius px, size px): an anechoic disc with tissue below."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        tissue = 80.0 * np.exp(-(rad - 70) / 400.0) * rng.rayleigh(1.0, fan.shape)
        img = np.where(fan, tissue, 0.0)
        if shadow is not None:
            a0, a1, r = shadow
            cone = (ang >= a0) & (ang <= a1) & fan
            img[cone & (rad >= r) & (rad < r + 4)] = 230.0                # the bone surface
            img[cone & (rad >= r + 4)] = rng.rayleigh(2.0, (cone & (rad >= r + 4)).sum())
        if vessel is not None:
            a, r, size = vessel
            yy = -60.0 + r * np.cos(np.radians(a))
            xx = 160.0 + r * np.sin(np.radians(a))
            y, x = np.mgrid[0:ROWS, 0:COLS]
            img[(y - yy) ** 2 + (x - xx) ** 2 < size ** 2] = rng.rayleigh(2.0)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_the_apex_of_a_convex_fan_and_none_for_a_linear_one():
    fan, _, _ = _convex()
    r, c = fan_apex(fan)
    assert abs(r + 60) < 3 and abs(c - 160) < 2
    rect = np.zeros((ROWS, COLS), bool)
    rect[20:220, 40:280] = True
    assert fan_apex(rect) is None


def test_a_rib_shadow_is_found_and_an_anechoic_vessel_is_not():
    fan, ang, rad = _convex()
    frames = _frames(fan, ang, rad, shadow=(-25.0, -10.0, 110.0), vessel=(15.0, 170.0, 14))
    finder = ShadowFinder(frames, fan, (PX_MM, PX_MM))
    ys, xs = np.nonzero(fan)
    sh = finder.shadow(frames[0], ys, xs)
    a, r = ang[ys, xs], rad[ys, xs]
    behind_rib = (a > -23) & (a < -12) & (r > 120)
    assert sh[behind_rib].mean() > 0.9                          # the shadow
    assert sh[(a > -23) & (a < -12) & (r > 108) & (r < 114)].mean() > 0.8   # and its reflector
    vessel = (np.abs(a - 15) < 3) & (r > 160) & (r < 180)
    assert sh[vessel].mean() < 0.05                             # tissue again below the vessel
    assert sh[(a > 0) | (a < -30)].mean() < 0.03                # elsewhere: almost nothing


def test_a_shadow_is_found_under_noise_that_an_over_compensating_tgc_brightens_with_depth():
    """TGC amplifies the electronic noise with depth: deep in the fan, shadows and tissue alike
    are bright noise. The shadow must still run to the ray's end (the noisy tail tells nothing
    either way); before 2026-12-03 that tail counted as tissue and no shadow was found."""
    fan, ang, rad = _convex()
    rng = np.random.default_rng(3)
    noise_sigma = 1.0 * np.exp((rad - 70.0) / 45.0)               # ~130 at the bottom: over-compensated
    frames = []
    for clean in _frames(fan, ang, rad, shadow=(-25.0, -10.0, 110.0)).astype(float):
        img = np.where(fan, clean + rng.rayleigh(1.0, fan.shape) * noise_sigma, 0.0)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    frames = np.stack(frames)
    finder = ShadowFinder(frames, fan, (PX_MM, PX_MM))
    ys, xs = np.nonzero(fan)
    sh = finder.shadow(frames[0], ys, xs)
    a, r = ang[ys, xs], rad[ys, xs]
    assert sh[(a > -23) & (a < -12) & (r > 120) & (r < 200)].mean() > 0.9      # the shadow under the rib
    assert sh[(a > 0) | (a < -30)].mean() < 0.03                                 # not the noisy tissue
    assert not finder.informative[-1] and finder.informative[len(finder.radii) // 4]


def test_a_linear_probe_reads_its_columns():
    rect = np.zeros((ROWS, COLS), bool)
    rect[10:230, 30:290] = True
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(float)
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(6):
        img = np.where(rect, 80.0 * rng.rayleigh(1.0, rect.shape), 0.0)
        img[(x >= 100) & (x < 140) & (y >= 60) & (y < 63)] = 230.0
        img[(x >= 100) & (x < 140) & (y >= 63) & rect] = 3.0
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    frames = np.stack(frames)
    finder = ShadowFinder(frames, rect, (PX_MM, PX_MM))
    assert finder.apex is None
    ys, xs = np.nonzero(rect)
    sh = finder.shadow(frames[0], ys, xs)
    assert sh[(xs > 104) & (xs < 136) & (ys > 70)].mean() > 0.9
    assert sh[(xs < 90) | (xs > 150)].mean() < 0.03


def test_marked_sweeps_leave_shadows_out_of_the_lc2_frames(demo_case):
    from registration.align.lc2_cost import frame_samples, select_frames
    from registration.io.sequence_io import load_sweep
    truth = json.loads((demo_case / "truth.json").read_text())
    sweep = load_sweep(demo_case / "sweep_lesion_3.igs.mha", calibration=demo_case / truth["ultrasound"]["config"])
    marked = mark_shadows(sweep)
    assert marked.metadata["drop_shadows"] and not sweep.metadata.get("drop_shadows")
    idx = select_frames(sweep, 12)
    plain, dropped = frame_samples(sweep, idx, 1.6), frame_samples(marked, idx, 1.6)
    assert dropped.fan.sum() == len(dropped.points_ref) and dropped.fan.sum() < 0.8 * plain.fan.sum()
    assert np.all(dropped.fan <= plain.fan) and np.all(dropped.u[~dropped.fan] == 0)
    # The kept points are the plain ones at the kept pixels
    keep = dropped.fan[plain.fan]
    assert np.allclose(dropped.points_ref, plain.points_ref[keep])
    # What is dropped lies behind bone or gas on the CT labels (truth): most of it, and of that most found
    from registration.io.labelmap_io import load_labels
    from registration.spatial.transforms import apply
    labels = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json")
    pts = apply(np.asarray(truth["reference_to_ct"], float), plain.points_ref)
    ijk = np.clip(np.rint(labels.lps_to_index(pts)).astype(int), 0, np.array(labels.array.shape[::-1]) - 1)
    lab = labels.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]
    hit = np.zeros(plain.u.shape, bool)
    hit[plain.fan] = np.isin(lab, [labels.names["bone"], labels.names["lung"]])
    behind = np.maximum.accumulate(hit, axis=1)[plain.fan]      # below a bone or lung pixel (image columns)
    gone = ~keep
    assert behind[gone].mean() > 0.85 and gone[behind].mean() > 0.5


def test_drop_shadows_follows_frames_that_already_lost_pixels():
    """After a volume slice's unimaged pixels went, the points stay in step with the mask."""
    fan, ang, rad = _convex()
    frames = _frames(fan, ang, rad, n=4, shadow=(-25.0, -10.0, 110.0))

    class _S:                                               # the three things drop_shadows reads
        def __init__(self):
            self.frames = frames
            self.metadata = {}

        def require_image_to_reference(self):
            m = np.eye(4)
            m[0, 0] = m[1, 1] = PX_MM
            return np.stack([m] * len(frames)), np.ones(len(frames), bool)
    ys, xs = np.nonzero(fan)
    fans = np.broadcast_to(fan, frames.shape).copy()
    fans[1][:, :80] = False                                 # frame 1 lost its left part
    pts = [np.stack([xs, ys, np.zeros_like(xs)], 1)[fans[n][fan]].astype(float) for n in range(len(frames))]
    u = np.where(fans, frames, 0).astype(np.float32)
    u, fans2, pts2 = drop_shadows(_S(), fan, range(len(frames)), fan, ys.astype(float), xs.astype(float),
                                  u, fans.copy(), pts)
    for n in range(len(frames)):
        assert np.all(fans2[n] <= fans[n]) and fans2[n].sum() == len(pts2[n])
        kept = np.stack([xs, ys], 1)[fans2[n][fan]]
        assert np.array_equal(kept, pts2[n][:, :2].astype(int))


@pytest.mark.parametrize("bad", ["maybe"])
def test_register_mr_sweep_refuses_an_unknown_shadows_option(bad, demo_case):
    from registration.align.mr_us import register_mr_sweep
    from registration.spatial.errors import InputError
    from registration.spatial.volume import Volume
    mr = Volume(np.ones((8, 8, 8), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="shadows"):
        register_mr_sweep(mr, None, np.eye(4), shadows=bad)


def test_the_finder_cache_lets_a_sweep_go():
    """The per-sweep finder is cached by a weak reference to the frames: a dropped sweep is freed."""
    import gc
    import weakref

    from registration.ultrasound import shadows
    fan, ang, rad = _convex()
    frames = _frames(fan, ang, rad, n=3)

    class _S:
        def __init__(self, f):
            self.frames = f

        def require_image_to_reference(self):
            m = np.eye(4)
            m[0, 0] = m[1, 1] = PX_MM
            return np.stack([m] * len(self.frames)), np.ones(len(self.frames), bool)
    s = _S(frames)
    assert shadows.finder_of(s, fan) is shadows.finder_of(s, fan)     # built once
    ref = weakref.ref(frames)
    del s, frames
    gc.collect()
    assert ref() is None


def test_a_shadow_widened_by_its_edge_margin_leaves_the_tissue_beside_it_out_and_nothing_far_away():
    """``edge_mm`` (``EDGE_MM`` for a whole-sweep CT registration): the shadow grows sideways by that
    much at the deepest depth; the tissue just beside the rib shadow is then left out, the rest of the
    fan is not, and the plain shadow (edge 0) is unchanged by a widened look-up of the same frame."""
    fan, ang, rad = _convex()
    frames = _frames(fan, ang, rad, shadow=(-25.0, -10.0, 110.0))
    finder = ShadowFinder(frames, fan, (PX_MM, PX_MM))
    ys, xs = np.nonzero(fan)
    a, r = ang[ys, xs], rad[ys, xs]
    plain = finder.shadow(frames[0], ys, xs, key=0)
    wide = finder.shadow(frames[0], ys, xs, key=0, edge_mm=3.0)
    assert np.array_equal(plain, finder.shadow(frames[0], ys, xs, key=0))
    assert np.all(wide[plain])                                   # a superset
    # at the deepest radius (290 px = 116 mm from the apex) 3 mm is ~1.5 deg: tissue 0.4-1.0 deg beside
    # the shadow's side is out with the margin, in without it
    beside = (a > -10.0 + 0.4) & (a < -10.0 + 1.0) & (r > 250)
    assert plain[beside].mean() < 0.2 and wide[beside].mean() > 0.8
    assert wide[(a > 5.0) | (a < -32.0)].mean() < 0.03


def test_whole_sweep_registrations_widen_the_shadows_and_the_focus_does_not(demo_case):
    """register_sweep marks the sweep with ``EDGE_MM`` (its LC2 frames lose the shadows' sides too);
    the focused refinement marks it again with none, whatever it was given."""
    from registration.align.lc2_cost import frame_samples
    from registration.align.volume_sweep import with_shadows_marked
    from registration.io.sequence_io import load_sweep
    from registration.ultrasound.shadows import EDGE_MM
    truth = json.loads((demo_case / "truth.json").read_text())
    sweep = load_sweep(demo_case / "sweep_lesion_3.igs.mha", calibration=demo_case / truth["ultrasound"]["config"])
    assert EDGE_MM > 0
    whole = with_shadows_marked(sweep, "drop", edge_mm=EDGE_MM)
    focus = with_shadows_marked(whole, "drop")
    assert whole.metadata["shadow_edge_mm"] == EDGE_MM and focus.metadata["shadow_edge_mm"] == 0.0
    idx = np.flatnonzero(sweep.valid)[:8]
    wide, plain = frame_samples(whole, idx, 2.5), frame_samples(focus, idx, 2.5)
    assert np.all(wide.fan <= plain.fan) and wide.fan.sum() < plain.fan.sum() < frame_samples(sweep, idx, 2.5).fan.sum()


def test_register_sweep_hands_the_engine_a_sweep_marked_with_the_edge_margin(demo_case, monkeypatch):
    from registration.align import intensity_registration
    from registration.io.ct_io import load_ct
    from registration.io.sequence_io import load_sweep
    from registration.ultrasound.shadows import EDGE_MM
    truth = json.loads((demo_case / "truth.json").read_text())
    sweep = load_sweep(demo_case / "sweep_lesion_3.igs.mha", calibration=demo_case / truth["ultrasound"]["config"])
    seen = {}

    def engine(ct, marked, init, options, **kw):
        seen.update(marked.metadata)
        raise RuntimeError("stop")
    monkeypatch.setattr(intensity_registration, "register_lc2", engine)
    with pytest.raises(RuntimeError, match="stop"):
        intensity_registration.register_sweep(load_ct(demo_case / "ct_portal.nrrd"), sweep,
                                              np.asarray(truth["ultrasound"]["reference_to_ct"], float))
    assert seen["drop_shadows"] and seen["shadow_edge_mm"] == EDGE_MM
