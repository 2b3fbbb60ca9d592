"""Breathing in a free-breathing sweep: detection, the CT's phase, gating.

The CT is a breath-hold; during a free-breathing sweep the liver moves, mostly
cranio-caudally (the CT's S axis, LPS +z) by 10-25 mm, while the probe and the
Reference marker stay put. Our demo sweeps are transverse, so that motion is
mostly *out of* the image plane: a window of a few frames cannot measure it on
its own. All frames are therefore pooled through a breathing model.

Given a registration ``M = reference_to_ct`` of the whole sweep (a compromise
between the breathing phases), each frame f of a subset (``PROFILE_FRAMES``,
evenly spread in time) gets an LC2 profile over CT-space shifts along S:
``num_f(s)`` = the frame's part of the LC2 sum under ``T(s e_S) @ M`` (LC2 =
sum_f num_f / sum_f w_f, with weights from the US alone). The shift the frames
prefer is modelled as the raised cosine of Lujan et al. (Med Phys 1999,
n = 1)::

    s(t) = c + A * 0.5 * (1 - cos(2 pi (t - t0) / T))

(A = amplitude, T = period 2.5-6 s, t0 = phase, c = shift at the b = 0
extreme), fitted by exhaustive search maximising ``sum_f num_f(s(t_f))``. If
the liver tissue seen at Reference point r lies at CT point ``M(r) + d e_S``, the
frame prefers ``s = +d``. At end-expiration the liver is at its most cranial,
i.e. the smallest ``s``: after an expiration breath-hold CT (``breath_hold =
"expiration"``, the demo case's convention) the CT's phase is ``s = c``, after
an inspiration breath-hold it is ``s = c + A``.

Breathing is reported when ``A >= DETECT_AMPLITUDE_MM`` and the model explains
the sweep better than one constant shift by ``DETECT_GAIN`` (LC2 units), also on
frames it was not fitted to (``DETECT_HELD_OUT_GAIN``, :func:`held_out_gain`), with
the period no longer than the sweep (a full cycle inside it: a slow trend, e.g.
from a small rotation error along a tilting sweep, is not breathing). The
profiles are measured at the 2.5 mm level, not the coarse one, where static
sweeps fake breathing. The frames within ``GATE_TOLERANCE_MM`` of the CT's
phase can then be registered again
(:func:`registration.align.intensity_registration.register_sweep`,
``breathing="gate"``; experimental: not better on average). The thresholds and
the measured limits: docs/registration_tuning.md#breathing.

Units: mm, seconds. No Qt/VTK here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from registration.spatial.sweep import Sweep

from .lc2_cost import FeatureLevel, FrameLC2Cost, frame_samples

S_AXIS = np.array([0.0, 0.0, 1.0])   # LPS +z = superior
#: Frames in the profile (evenly spread in time over the valid frames).
PROFILE_FRAMES = 20
#: Shifts (mm) along S at which every profile frame is evaluated.
SHIFTS_MM = np.arange(-15.0, 15.0 + 1e-9, 1.5)
#: Model grid: periods (s), phases per period, amplitudes (mm), offset step (mm).
PERIODS_S = np.arange(2.5, 6.0 + 1e-9, 0.25)
N_PHASES = 24
AMPLITUDES_MM = np.arange(0.0, 20.0 + 1e-9, 0.5)
OFFSET_STEP_MM = 0.5
#: Detection: amplitude (mm) and LC2 gain over the best constant shift (docs/registration_tuning.md#breathing).
DETECT_AMPLITUDE_MM = 4.0
DETECT_GAIN = 0.005
#: ... and the model fitted on half the profile frames must gain this much on the other half
#: (:func:`held_out_gain`; a heuristic level: true 10 mm breathing 0.004-0.035, static sweeps of
#: other simulators that passed DETECT_GAIN -0.010 to -0.003, and two at 0.008-0.009; see
#: docs/registration_tuning.md#breathing).
DETECT_HELD_OUT_GAIN = 0.0025
#: Frames whose modelled shift lies within this of the CT's phase are kept when gating.
GATE_TOLERANCE_MM = 2.5
#: Fewest frames a gated registration may use.
MIN_GATED_FRAMES = 8


@dataclass
class BreathingReport:
    """Breathing found in a sweep about a registration (mm, s); ``to_dict`` is its JSON form."""
    detected: bool = False
    amplitude_mm: float = 0.0
    period_s: Optional[float] = None
    phase_s: Optional[float] = None
    offset_mm: float = 0.0                    # c: shift at the b = 0 extreme (CT mm along S)
    gain: float = 0.0                         # LC2 explained by the model beyond a constant shift
    held_out_gain: Optional[float] = None     # the same on held-out frames (held_out_gain; None: not needed)
    ct_phase_shift_mm: float = 0.0            # shift (along S) of the CT's phase relative to M
    breath_hold: str = "expiration"
    gated_frames: Optional[List[int]] = None  # frames at the CT's phase (None: no gating)
    residual_mm: float = 0.0                  # RMS modelled motion left within the gated frames
    profile_frames: List[int] = field(default_factory=list)
    profile_shift_mm: List[float] = field(default_factory=list)   # modelled s(t_f) per profile frame
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def r(v):
            return None if v is None else round(float(v), 3)
        return {"detected": self.detected, "amplitude_mm": r(self.amplitude_mm), "period_s": r(self.period_s),
                "phase_s": r(self.phase_s), "offset_mm": r(self.offset_mm), "gain": r(self.gain),
                "held_out_gain": r(self.held_out_gain),
                "ct_phase_shift_mm": r(self.ct_phase_shift_mm), "breath_hold": self.breath_hold,
                "gated_frames": self.gated_frames, "residual_mm": r(self.residual_mm),
                "profile_frames": self.profile_frames,
                "profile_shift_mm": [round(float(v), 2) for v in self.profile_shift_mm],
                "notes": list(self.notes)}


def raised_cosine(t: np.ndarray, period_s: float, phase_s: float) -> np.ndarray:
    """b(t) in [0, 1]: 0 at t = phase_s (+ k periods), 1 half a period later."""
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * (np.asarray(t, float) - phase_s) / period_s))


def shift_profiles(sweep: Sweep, level: FeatureLevel, reference_to_ct: np.ndarray, frames: Sequence[int],
                   patch_px: int = 7, shifts_mm: np.ndarray = SHIFTS_MM,
                   map_fn=None) -> tuple:
    """(num [n_frames, n_shifts], den [n_frames]): per-frame LC2 sums under ``T(s e_S) @ M``."""
    cost = FrameLC2Cost(level, frame_samples(sweep, np.asarray(frames, int), level.spacing_mm), patch_px)
    num = np.zeros((len(frames), len(shifts_mm)))
    den = np.zeros(len(frames))
    for k, s in enumerate(shifts_mm):
        m = np.eye(4)
        m[:3, 3] = s * S_AXIS
        num[:, k], den = cost.metric(m @ reference_to_ct, map_fn, per_frame=True)
    return num, den


def _profile_score(num: np.ndarray, den_total: float, s: np.ndarray, shifts_mm: np.ndarray) -> np.ndarray:
    """LC2 of shifts ``s`` [..., n_frames] (mm): the per-frame profiles ``num`` [n_frames, n_shifts]
    interpolated linearly (clipped to the measured shifts), summed over frames, / ``den_total``."""
    lo, step = float(shifts_mm[0]), float(shifts_mm[1] - shifts_mm[0])
    n_s = len(shifts_mm)
    rows = np.arange(num.shape[0])
    x = np.clip((s - lo) / step, 0.0, n_s - 1.0)
    i0 = np.minimum(np.floor(x).astype(int), n_s - 2)
    fr = x - i0
    v = num[rows, i0] * (1 - fr) + num[rows, i0 + 1] * fr
    return v.sum(axis=-1) / den_total


def _constant_scores(num: np.ndarray, den_total: float, shifts_mm: np.ndarray) -> tuple:
    """(offsets, LC2 of each): one shift for every frame, on the grid ``OFFSET_STEP_MM`` apart."""
    offsets = np.arange(shifts_mm[0], shifts_mm[-1] + 1e-9, OFFSET_STEP_MM)
    return offsets, _profile_score(num, den_total, offsets[:, None] + np.zeros(num.shape[0]), shifts_mm)


def fit_breathing(times_s: np.ndarray, num: np.ndarray, den: np.ndarray,
                  shifts_mm: np.ndarray = SHIFTS_MM, max_period_s: Optional[float] = None) -> dict:
    """Exhaustive fit of ``s(t) = c + A b(t)`` to the profiles; also the best constant shift.

    Returns {'A', 'T', 't0', 'c', 'score', 'score_constant', 'c_constant'} with scores in
    LC2 units (sum over frames of the interpolated profile / sum of weights)."""
    t = np.asarray(times_s, float)
    total = float(den.sum()) or 1.0

    def score(s):
        return _profile_score(num, total, s, shifts_mm)

    offsets, const = _constant_scores(num, total, shifts_mm)
    kc = int(np.argmax(const))
    best = {"score": -np.inf}
    amps = AMPLITUDES_MM[AMPLITUDES_MM > 0]
    periods = PERIODS_S if max_period_s is None else PERIODS_S[PERIODS_S <= max_period_s + 1e-9]
    for period in periods:
        for t0 in np.arange(N_PHASES) * period / N_PHASES:
            b = raised_cosine(t, period, t0)                             # [n_frames]
            s = offsets[:, None, None] + amps[None, :, None] * b         # [n_c, n_A, n_frames]
            sc = score(s)
            k = np.unravel_index(int(np.argmax(sc)), sc.shape)
            if sc[k] > best["score"]:
                best = {"score": float(sc[k]), "c": float(offsets[k[0]]), "A": float(amps[k[1]]),
                        "T": float(period), "t0": float(t0)}
    best.update(score_constant=float(const[kc]), c_constant=float(offsets[kc]))
    return best


def held_out_gain(times_s: np.ndarray, num: np.ndarray, den: np.ndarray, shifts_mm: np.ndarray = SHIFTS_MM,
                  max_period_s: Optional[float] = None) -> float:
    """Two-fold cross-validated model gain (LC2 units): the model fitted on the even profile frames
    scored on the odd ones against their own best constant shift, and the other way round; the mean.

    Breathing is one smooth motion through the sweep, so a model fitted on half the frames
    predicts the other half. A model fitted to frame-to-frame noise of the profiles (a static
    sweep whose frames prefer scattered shifts, e.g. noisy deep fields) does not: its held-out
    gain is near zero or negative while its in-sample gain can pass ``DETECT_GAIN``."""
    t = np.asarray(times_s, float)
    gains = []
    for fit_idx, test_idx in ((slice(0, None, 2), slice(1, None, 2)), (slice(1, None, 2), slice(0, None, 2))):
        fit = fit_breathing(t[fit_idx], num[fit_idx], den[fit_idx], shifts_mm, max_period_s)
        tn, td = num[test_idx], float(den[test_idx].sum()) or 1.0
        model = fit["c"] + fit["A"] * raised_cosine(t[test_idx], fit["T"], fit["t0"])
        const = _constant_scores(tn, td, shifts_mm)[1].max()
        gains.append(float(_profile_score(tn, td, model, shifts_mm)) - float(const))
    return float(np.mean(gains))


def analyse_breathing(sweep: Sweep, level: FeatureLevel, reference_to_ct: np.ndarray, frames: Sequence[int], *,
                      breath_hold: str = "expiration", patch_px: int = 7, map_fn=None) -> BreathingReport:
    """Detect breathing in ``frames`` (valid frames) about the registration ``reference_to_ct``
    and choose the frames at the CT's phase (``breath_hold``: "expiration" or "inspiration")."""
    if breath_hold not in ("expiration", "inspiration"):
        raise ValueError(f"breath_hold must be 'expiration' or 'inspiration', not {breath_hold!r}")
    rep = BreathingReport(breath_hold=breath_hold)
    valid = np.asarray(sorted(int(f) for f in frames), int)
    ts = sweep.timestamps[valid] - sweep.timestamps[valid[0]] if valid.size else np.zeros(0)
    if valid.size < 2 or ts[-1] < PERIODS_S[0]:
        rep.notes.append(f"sweep shorter than a breathing cycle ({ts[-1] if ts.size else 0:.1f} s < "
                         f"{PERIODS_S[0]:.1f} s): breathing not measurable")
        return rep
    pick = valid[np.unique(np.round(np.linspace(0, valid.size - 1, min(PROFILE_FRAMES, valid.size))).astype(int))]
    num, den = shift_profiles(sweep, level, reference_to_ct, pick, patch_px, map_fn=map_fn)
    t_pick = sweep.timestamps[pick] - sweep.timestamps[valid[0]]
    # A full cycle must lie inside the sweep: a slow trend (e.g. from a small rotation error
    # along a tilting sweep) is not breathing, and both extremes are needed to find the CT's.
    fit = fit_breathing(t_pick, num, den, max_period_s=float(ts[-1]))
    rep.profile_frames = [int(f) for f in pick]
    rep.amplitude_mm, rep.period_s, rep.phase_s, rep.offset_mm = fit["A"], fit["T"], fit["t0"], fit["c"]
    rep.gain = fit["score"] - fit["score_constant"]
    rep.profile_shift_mm = list(fit["c"] + fit["A"] * raised_cosine(t_pick, fit["T"], fit["t0"]))
    rep.detected = bool(rep.amplitude_mm >= DETECT_AMPLITUDE_MM and rep.gain >= DETECT_GAIN)
    if rep.detected:
        rep.held_out_gain = held_out_gain(t_pick, num, den, max_period_s=float(ts[-1]))
        if rep.held_out_gain < DETECT_HELD_OUT_GAIN:
            rep.detected = False
            rep.notes.append(f"a {rep.amplitude_mm:.1f} mm breathing model fitted these frames (gain "
                             f"{rep.gain:.3f} LC2) but did not predict held-out frames (gain {rep.held_out_gain:.3f}): "
                             "not breathing")
    if not rep.detected:
        rep.ct_phase_shift_mm = fit["c_constant"]
        return rep
    b = raised_cosine(ts, fit["T"], fit["t0"])
    dist = rep.amplitude_mm * (b if breath_hold == "expiration" else 1.0 - b)   # mm from the CT's phase
    rep.ct_phase_shift_mm = rep.offset_mm + (0.0 if breath_hold == "expiration" else rep.amplitude_mm)
    keep = dist <= GATE_TOLERANCE_MM
    msg = (f"breathing detected: {rep.amplitude_mm:.1f} mm cranio-caudal, period {rep.period_s:.1f} s "
           f"(model gain {rep.gain:.3f} LC2)")
    if keep.sum() < MIN_GATED_FRAMES:
        rep.notes.append(f"{msg}; only {int(keep.sum())} frames at the CT's {breath_hold} phase: not gated")
        return rep
    rep.gated_frames = [int(f) for f in valid[keep]]
    rep.residual_mm = float(np.sqrt(np.mean(dist[keep] ** 2)))
    rep.notes.append(f"{msg}; {len(rep.gated_frames)} frames at the CT's {breath_hold} phase "
                     f"(residual motion {rep.residual_mm:.1f} mm RMS)")
    return rep
