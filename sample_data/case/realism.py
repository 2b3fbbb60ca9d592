"""Simulated vs real liver ultrasound: side-by-side statistics and pictures.

Run ``python -m sample_data.case.realism [--seed N] [--out tests/artifacts]``.

Real data: ``../shared/data/liver-us/liver_sweep.igs.mha`` (140 convex frames,
0.3148 mm/px, in-vivo liver). Simulated: frames of the demo phantom
(``sample_data.phantom.build.make_phantom``) from a survey window over the right
lobe and through one adenocarcinoma and one NET lesion.

Measured on both with the same code (all grey levels 0-255, depths in mm from
the top row, sizes in mm):

* speckle in homogeneous parenchyma: 15 x 15 mm tiles 30-110 mm deep whose
  2.5 mm block means vary by < 15 % (for the simulation also inside the liver
  label): mean, std and SNR (mean/std) of grey; SNR of the envelope after
  undoing a 60 dB log compression (Rayleigh speckle: 1.91); grain size as the
  FWHM of the tile autocorrelation along rows (axial) and columns (lateral);
* vessels: dark blobs (1 mm-smoothed grey < 0.35 x the band's 80th
  percentile, 15-600 mm^2, surrounded by tissue brighter than 0.6 x that
  level, which rejects shadows) 30-130 mm deep, against a 2-5 mm ring around them: grey difference
  and envelope contrast in dB (same 60 dB assumption); for the simulation
  also the lumen of the labelled vessels (eroded 1.5 mm);
* depth fall-off: mean grey of non-black fan pixels per 5 mm of depth, and
  the slope of a line fitted from 20 to 150 mm (grey/cm and dB/cm).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "liver-us" / "liver_sweep.igs.mha"
DR_DB = 60.0


# --------------------------------------------------------------------------- measures
def _tiles(frame, mask, px_mm, depth_mm=(30.0, 110.0), tile_mm=10.0):
    """Homogeneous tiles (row, col slices) inside ``mask``."""
    t = int(round(tile_mm / px_mm))
    b = max(2, int(round(2.5 / px_mm)))
    out = []
    r0, r1 = int(depth_mm[0] / px_mm), int(depth_mm[1] / px_mm)
    for r in range(r0, min(r1, frame.shape[0] - t), t // 2):
        for c in range(0, frame.shape[1] - t, t // 2):
            if not mask[r:r + t, c:c + t].all():
                continue
            tile = frame[r:r + t, c:c + t].astype(float)
            n = t // b
            blocks = tile[:n * b, :n * b].reshape(n, b, n, b).mean(axis=(1, 3))
            if blocks.mean() > 5 and blocks.std() / blocks.mean() < 0.15:
                out.append((slice(r, r + t), slice(c, c + t)))
    return out


def _fwhm_mm(tile, px_mm):
    x = tile - tile.mean()
    f = np.fft.fft2(x, s=(2 * x.shape[0], 2 * x.shape[1]))
    ac = np.real(np.fft.ifft2(np.abs(f) ** 2))
    ac /= ac[0, 0]

    def half(profile):
        below = np.nonzero(profile < 0.5)[0]
        if below.size == 0:
            return np.nan
        k = below[0]
        return (k - 1 + (profile[k - 1] - 0.5) / (profile[k - 1] - profile[k])) * 2 * px_mm

    return half(ac[:, 0]), half(ac[0, :])


def speckle_stats(frames, masks, px_mm) -> dict:
    vals, fw = [], []
    for frame, mask in zip(frames, masks):
        for sl in _tiles(frame, mask, px_mm):
            tile = frame[sl].astype(float)
            vals.append(tile.reshape(-1))
            fw.append(_fwhm_mm(tile, px_mm))
    if not vals:
        return {"tiles": 0}
    # Per-tile statistics, averaged: slow brightness changes between tiles are not speckle.
    g_mean = np.mean([v.mean() for v in vals])
    g_std = np.mean([v.std() for v in vals])
    env = [10 ** (v * DR_DB / 255.0 / 20.0) for v in vals]
    env_snr = np.mean([e.mean() / e.std() for e in env])
    fw = np.array(fw)
    return {"tiles": len(vals), "grey_mean": g_mean, "grey_std": g_std, "grey_snr": g_mean / g_std,
            "envelope_snr": env_snr, "fwhm_axial_mm": np.nanmean(fw[:, 0]),
            "fwhm_lateral_mm": np.nanmean(fw[:, 1])}


def vessel_contrast(frames, fans, px_mm, vessel_masks=None) -> dict:
    """Dark-blob detector (or given masks) vs a 2-5 mm ring of parenchyma around them."""
    inside, ring = [], []
    for idx, (frame, fan) in enumerate(zip(frames, fans)):
        g = frame.astype(float)
        rows = np.arange(frame.shape[0])[:, None] * px_mm
        band = fan & (rows >= 30) & (rows <= 130) & ndimage.binary_erosion(fan, iterations=int(5 / px_mm))
        if vessel_masks is not None:
            ves = vessel_masks[idx] & band
        else:
            sm = ndimage.gaussian_filter(g, 1.0 / px_mm)
            # Tissue level: 80th percentile of the band (robust to shadows and black outside).
            med = np.percentile(sm[band], 80) if band.any() else 0
            dark = (sm < 0.35 * med) & band
            lab, n = ndimage.label(dark)
            area = ndimage.sum(np.ones_like(g), lab, index=np.arange(1, n + 1)) * px_mm ** 2
            keep = []
            grow = int(round(3 / px_mm))
            for n_id, sl in enumerate(ndimage.find_objects(lab), start=1):
                if not 15 <= area[n_id - 1] <= 600:
                    continue
                # A lumen is dark inside bright parenchyma; a shadow or the outside is not.
                box = tuple(slice(max(s.start - grow, 0), s.stop + grow) for s in sl)
                comp = lab[box] == n_id
                around = ndimage.binary_dilation(comp, iterations=grow) & ~comp & band[box]
                if around.any() and sm[box][around].mean() > 0.6 * med:
                    keep.append(n_id)
            ves = np.isin(lab, keep)
        if ves.sum() < 10:
            continue
        outer = ndimage.binary_dilation(ves, iterations=int(round(5 / px_mm)))
        inner = ndimage.binary_dilation(ves, iterations=int(round(2 / px_mm)))
        rg = outer & ~inner & band
        inside.append(g[ves])
        ring.append(g[rg])
    if not inside:
        return {"vessel_pixels": 0}
    v, r = np.concatenate(inside), np.concatenate(ring)
    env = lambda a: np.mean(10 ** (a * DR_DB / 255.0 / 20.0))  # noqa: E731
    return {"vessel_pixels": int(v.size), "vessel_grey": v.mean(), "ring_grey": r.mean(),
            "grey_difference": r.mean() - v.mean(), "contrast_db": 20 * np.log10(env(r) / env(v))}


def depth_profile(frames, fans, px_mm, step_mm=5.0):
    edges = np.arange(0, frames[0].shape[0] * px_mm + step_mm, step_mm)
    sums = np.zeros(edges.size - 1)
    counts = np.zeros(edges.size - 1)
    rows_mm = np.arange(frames[0].shape[0]) * px_mm
    b = np.digitize(rows_mm, edges) - 1
    for frame, fan in zip(frames, fans):
        ok = fan & (frame > 0)
        for r in range(frame.shape[0]):
            sel = ok[r]
            sums[b[r]] += frame[r, sel].sum()
            counts[b[r]] += sel.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    fit = (centres >= 20) & (centres <= 150) & np.isfinite(mean)
    slope = np.polyfit(centres[fit] / 10.0, mean[fit], 1)[0] if fit.sum() > 2 else np.nan
    return centres, mean, {"slope_grey_per_cm": slope, "slope_db_per_cm": slope * DR_DB / 255.0,
                           "mean_20_60mm": float(np.nanmean(mean[(centres >= 20) & (centres <= 60)])),
                           "mean_100_150mm": float(np.nanmean(mean[(centres >= 100) & (centres <= 150)]))}


# --------------------------------------------------------------------------- data
def real_frames(step: int = 7):
    from registration.io.seq_mha_read import read_sequence
    sw = read_sequence(REAL)
    px = sw.pixel_spacing[0]
    fan = sw.fan_mask if sw.fan_mask is not None else sw.frames.max(0) > 0
    frames = sw.frames[::step]
    return frames, [fan] * len(frames), px


def simulated_frames(seed: int = 0, n_survey: int = 20, settings=None, phantom=None):
    """Survey frames of the phantom + one frame through each lesion type.

    Returns (survey frames, survey label frames, lesion pictures {type: (frame,
    labels, name)}, simulator, phantom).
    """
    from sample_data.phantom.build import make_phantom
    from sample_data.simulator.us_simulator import UltrasoundSimulator
    from sample_data.sweeps.probe_placement import (
        BodyGeometry,
        best_lateral,
        face_skin,
        find_window,
        probe_pose,
        skin_normal,
    )
    from sample_data.sweeps.sweep_motion import sweep_poses
    from sample_data.sweeps.tracked_sweeps import _right_lobe_target
    ph = phantom if phantom is not None else make_phantom(seed)
    lesions = ph.truth["lesions"]
    sim = UltrasoundSimulator(ph.ct_portal, ph.labels, seed=seed, settings=settings,
                              lesion_types={les["name"]: les["type"] for les in lesions})
    body = BodyGeometry(ph.ct_portal, ph.labels)
    rng = np.random.default_rng(seed)

    def base(target):
        skin, beam, _, _ = find_window(body, target, max_depth_mm=sim.probe.depth_mm)
        lat = best_lateral(sim, skin + 0.5 * beam, beam, target, rng)
        return face_skin(probe_pose(skin + 0.5 * beam, beam, lat), skin_normal(body, skin))

    poses = sweep_poses(body, base(_right_lobe_target(ph.labels)), n=n_survey, fps=25.0,
                        tilt_deg=25.0, slide_mm=20.0, lateral_mm=5.0, rng=rng)
    survey = [sim.simulate(p @ sim.image_to_probe) for p in poses]
    pictures = {}
    for kind in ("adenocarcinoma", "net"):
        cands = sorted((les for les in lesions if les["type"] == kind), key=lambda l: -l["diameter_mm"])
        if cands:
            les = cands[0]
            pose = base(np.array(les["centroid_lps"]))
            pictures[kind] = sim.simulate(pose @ sim.image_to_probe) + (les["name"],)
    return [s[0] for s in survey], [s[1] for s in survey], pictures, sim, ph


def frames_per_second(sim, n: int = 20) -> float:
    pose = np.eye(4)
    lo, hi = sim.ct.bounds_lps()
    pose[:3, 3] = (lo + hi) / 2
    sim.simulate(pose @ sim.image_to_probe)
    t = time.perf_counter()
    for _ in range(n):
        sim.simulate(pose @ sim.image_to_probe)
    return n / (time.perf_counter() - t)


# --------------------------------------------------------------------------- report
def compare(seed: int = 0, out_dir=None, settings=None, verbose: bool = True, phantom=None) -> dict:
    rf, rfan, rpx = real_frames()
    sf, slab, pics, sim, ph = simulated_frames(seed, settings=settings, phantom=phantom)
    spx = sim.probe.pixel_mm
    sfan = [sim.fan_mask] * len(sf)
    liver_v = [v for n, v in ph.labels.names.items() if n == "liver"]
    vessel_v = [v for n, v in ph.labels.names.items() if n in ("portal_vein", "hepatic_vein", "ivc")]
    liver_masks = [np.isin(lab, liver_v) & sim.fan_mask for lab in slab]
    rows = {
        "real": {**speckle_stats(rf, rfan, rpx), **vessel_contrast(rf, rfan, rpx)},
        "sim": {**speckle_stats(sf, liver_masks, spx), **vessel_contrast(sf, sfan, spx)},
    }
    sim_lab_vessels = vessel_contrast(sf, sfan, spx, [np.isin(lab, vessel_v) for lab in slab])
    rows["sim"]["labelled_vessel_contrast_db"] = sim_lab_vessels.get("contrast_db", np.nan)
    # Lumen of the labelled vessels >= ~4 mm wide (eroded 1.5 mm): the dark part a reader sees.
    lumen = [ndimage.binary_erosion(np.isin(lab, vessel_v), iterations=int(round(1.5 / spx))) for lab in slab]
    lum = vessel_contrast(sf, sfan, spx, lumen)
    rows["sim"]["labelled_lumen_grey"] = lum.get("vessel_grey", np.nan)
    rows["sim"]["labelled_lumen_contrast_db"] = lum.get("contrast_db", np.nan)
    rc, rm, rfit = depth_profile(rf, rfan, rpx)
    sc, sm, sfit = depth_profile(sf, sfan, spx)
    rows["real"].update(rfit)
    rows["sim"].update(sfit)
    for kind, (fr, lab, name) in pics.items():
        les = lab == ph.labels.names[name]
        ring = (ndimage.binary_dilation(les, iterations=int(round(6 / spx)))
                & ~ndimage.binary_dilation(les, iterations=int(round(2 / spx)))
                & (lab == ph.labels.names["liver"]))
        if les.sum() > 10 and ring.sum() > 10:
            rows["sim"][f"lesion_minus_liver_{kind}"] = fr[les].mean() - fr[ring].mean()
    fps = frames_per_second(sim)
    rows["sim"]["frames_per_s"] = fps
    lines = [f"{'metric':34s} {'real':>10s} {'simulated':>10s}"]
    for k in rows["sim"]:
        r, s = rows["real"].get(k, np.nan), rows["sim"].get(k, np.nan)
        lines.append(f"{k:34s} {r:10.3f} {s:10.3f}")
    lines.append(f"(real: {len(rf)} frames of {REAL.name}, {rpx:.4f} mm/px; simulated: {len(sf)} survey "
                 f"frames of the phantom (seed {seed}), {spx:.4f} mm/px; envelope/dB values: the same "
                 f"{DR_DB:.0f} dB log-compression inverse applied to both)")
    if verbose:
        print("\n".join(lines))
    if out_dir is not None:
        from registration.spatial.atomic_io import atomic_write_text
        atomic_write_text(Path(out_dir) / "us_realism.txt", "\n".join(lines) + "\n")
    if out_dir is not None:
        _pictures(Path(out_dir), rf, rpx, sf, slab, pics, spx, (rc, rm), (sc, sm), sim, ph)
    return rows


def _pictures(out, rf, rpx, sf, slab, pics, spx, real_curve, sim_curve, sim, ph):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    panels = [("real liver (liver_sweep frame %d)" % (7 * (len(rf) // 2)), rf[len(rf) // 2], None, rpx),
              ("simulated survey, right lobe", sf[len(sf) // 2], slab[len(sf) // 2], spx)]
    for kind, (fr, lab, name) in pics.items():
        panels.append((f"simulated through {name} ({kind})", fr, lab, spx))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6))
    for ax, (title, img, lab, px) in zip(axes, panels):
        h, w = img.shape
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, extent=(0, w * px, h * px, 0))
        if lab is not None:
            les = [v for n, v in ph.labels.names.items() if n.startswith("lesion")]
            ax.contour(np.isin(lab, les), levels=[0.5], colors="r", linewidths=0.6,
                       extent=(0, w * px, 0, h * px), origin="upper")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("mm")
    fig.tight_layout()
    fig.savefig(out / "us_sim_vs_real.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*real_curve, label="real liver sweep")
    ax.plot(*sim_curve, label="simulated survey")
    ax.set_xlabel("depth (mm)")
    ax.set_ylabel("mean grey (non-black fan pixels)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "us_depth_profile.png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sample_data.case.realism", description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "tests" / "artifacts"))
    args = ap.parse_args(argv)
    if not REAL.exists():
        print(f"{REAL}: real liver sweep not found; fix: provide ../shared/data/liver-us", file=sys.stderr)
        return 2
    compare(args.seed, args.out)
    print(f"pictures: {os.path.join(args.out, 'us_sim_vs_real.png')}, "
          f"{os.path.join(args.out, 'us_depth_profile.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
