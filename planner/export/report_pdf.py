"""The PDF report a radiologist can file (matplotlib, Agg/PdfPages, no Qt, no web service).

Pages: (1) case, data and recommendation with reasons and evidence, lesion
table; (2..) per lesion: visibility inputs, then each chosen trajectory drawn
on CT planes: the axial slice at the target, the plane *along* the needle
(the probe's image plane for US paths, the gantry plane for CT paths) and the
plane *across* the needle at the target; (last) registration quality when
registered. CT planes are resliced from the LPS volume with trilinear
interpolation; images are shown in radiological convention (patient's right
on the image left, anterior up for axial).
"""
from __future__ import annotations

import io
import textwrap
from typing import Dict, Optional

import numpy as np
from scipy import ndimage

_W, _L = 400.0, 40.0   # soft-tissue window (HU)
_COLORS = {"liver": "#d9a441", "bone": "#ffffff", "vessel": "#e8463c", "lung": "#66c2ff",
           "gallbladder": "#57d957", "bowel": "#b57edc", "kidney": "#ff9f40"}


def _plane_kji(ct, centre, u, v, half_mm=70.0, px_mm=0.5):
    """(3, n, n) continuous [k, j, i] indices of a square plane centred at ``centre``.

    The plane spans ``2 * half_mm``; unit ``u`` points right and ``v`` down in the image.
    """
    n = int(round(2 * half_mm / px_mm)) + 1
    a = np.linspace(-half_mm, half_mm, n)
    m = ct.lps_to_ijk
    c_ijk = m[:3, :3] @ centre + m[:3, 3]
    du, dv = m[:3, :3] @ u, m[:3, :3] @ v      # index steps per mm along u and v
    ijk = c_ijk[:, None, None] + du[:, None, None] * a[None, None, :] + dv[:, None, None] * a[None, :, None]
    return ijk[::-1]


def _sample(arr, kji, order, cval):
    return ndimage.map_coordinates(arr, kji.reshape(3, -1), order=order, mode="constant",
                                   cval=cval).reshape(kji.shape[1:])


def _layers(anatomy, lesion_mask):
    """uint8 volumes to contour, converted once per page (conversion dominates otherwise)."""
    out = []
    for cls, color in _COLORS.items():
        m = anatomy.masks.get("vessel_large" if cls == "vessel" else cls)
        if m is not None and m.any():
            out.append((m.view(np.uint8), color, 0.7))
    if lesion_mask is not None:
        out.append((lesion_mask.view(np.uint8), "#ff3df5", 1.2))
    return out


def _to_uv(p, centre, u, v):
    d = np.asarray(p, float) - centre
    return float(d @ u), float(d @ v)


def _draw_view(ax, ct, layers, centre, u, v, title, path=None, half_mm=70.0, probe=None,
               labels=("", "", "", "")):
    kji = _plane_kji(ct, centre, u, v, half_mm)
    img = _sample(ct.array, kji, 1, -1000)
    ext = (-half_mm, half_mm, half_mm, -half_mm)
    ax.imshow(img, cmap="gray", vmin=_L - _W / 2, vmax=_L + _W / 2, extent=ext, interpolation="bilinear")
    for arr, color, lw in layers:
        sl = _sample(arr, kji, 0, 0)
        if sl.any():
            ax.contour(sl, levels=[0.5], colors=[color], linewidths=lw, extent=ext, origin="upper")
    if path is not None:
        (x0, y0), (x1, y1) = (_to_uv(path["entry_ct"], centre, u, v), _to_uv(path["target_ct"], centre, u, v))
        ax.plot([x0, x1], [y0, y1], color="#00ff66" if path["guidance"] == "us" else "#ffaa00", lw=1.6)
        ax.plot([x1], [y1], marker="+", color="#ff3df5", ms=10, mew=1.5)
        ax.plot([x0], [y0], marker="o", color="#00ff66" if path["guidance"] == "us" else "#ffaa00", ms=4)
    if probe is not None:
        q = _to_uv(probe["probe_ct"], centre, u, v)
        ax.plot([q[0]], [q[1]], marker="s", color="#33ccff", ms=6)
        ax.annotate("probe", q, color="#33ccff", fontsize=6, xytext=(3, -3), textcoords="offset points")
    ax.set_xlim(-half_mm, half_mm)
    ax.set_ylim(half_mm, -half_mm)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    left, right, top, bottom = labels
    for text, xy, ha, va in ((left, (0.01, 0.5), "left", "center"), (right, (0.99, 0.5), "right", "center"),
                             (top, (0.5, 0.99), "center", "top"), (bottom, (0.5, 0.01), "center", "bottom")):
        if text:
            ax.text(*xy, text, transform=ax.transAxes, color="yellow", fontsize=7, ha=ha, va=va)
    ax.plot([half_mm - 25, half_mm - 5], [half_mm - 5, half_mm - 5], color="white", lw=2)
    ax.text(half_mm - 15, half_mm - 8, "20 mm", color="white", fontsize=5, ha="center")


def _text_block(fig, x, y, lines, size=7.0, width=120, dy=None):
    dy = dy or size * 0.0019
    for line in lines:
        for k, part in enumerate(textwrap.wrap(line, width) or [""]):
            fig.text(x + (0.02 if k else 0.0), y, part, fontsize=size, va="top", family="DejaVu Sans")
            y -= dy
    return y


def _summary_page(fig, plan):
    rec = plan["recommendation"]
    fig.text(0.05, 0.97, "CT-guided / US-fusion liver biopsy plan", fontsize=14, weight="bold", va="top")
    fig.text(0.05, 0.945, f"{plan['created_utc']}   {plan['software']['name']} {plan['software']['version']}   "
                          f"plan format {plan['version']}   decision support: confirm every number",
             fontsize=7, va="top")
    case = plan.get("case", {})
    lines = ["CASE AND DATA: " + ", ".join(f"{k}: {v}" for k, v in case.items() if k != "warnings"),
             f"CT: {plan['ct']['shape_ijk']} voxels, spacing {plan['ct']['spacing_mm']} mm, "
             f"{plan['ct']['orientation']}, phases {', '.join(plan['ct']['phases'])}",
             "Anatomy: " + "; ".join(f"{k} {v['volume_ml']} ml{' (derived from CT)' if v['derived'] else ''}"
                                     for k, v in plan["anatomy"].items())]
    lines += [f"Note: {n}" for n in plan.get("anatomy_notes", [])]
    c = plan["constraints"]
    lines.append(f"Constraints: needle {c['needle_gauge']}, length <= {c['max_length_mm']:g} mm, >= "
                 f"{c['vessel_margin_mm']:g} mm from vessels >= 3 mm, >= {c['min_liver_mm']:g} mm normal liver, "
                 f"capsule angle <= {c['max_capsule_angle_deg']:g} deg, checked every {c['step_mm']} mm; "
                 f"patient {c.get('patient_position', 'supine')}")
    y = _text_block(fig, 0.05, 0.92, lines, 7)
    y -= 0.01
    fig.text(0.05, y, f"RECOMMENDATION: {rec['guidance'].upper()}"
             + (f" - biopsy {rec['biopsy_first']} first" if rec["biopsy_first"] else ""),
             fontsize=11, weight="bold", va="top")
    y -= 0.025
    y = _text_block(fig, 0.05, y, [f"- {r}" for r in rec["reasons"]], 7.5)
    y = _text_block(fig, 0.05, y - 0.005, ["Advisories:"] + [f"- {a['text']} [evidence: {a['evidence']}]"
                                                             for a in rec["advisories"]], 7)
    # lesion table
    y -= 0.015
    cols = ["rank", "lesion", "diam. mm", "type", "depth mm", "predicted", "measured CNR", "US/CT paths",
            "guidance"]
    rows = []
    for l in sorted(plan["lesions"], key=lambda l: l.get("accessibility_rank", 99)):
        vis = l["visibility"]
        meas = vis.get("measured") or {}
        rows.append([str(l.get("accessibility_rank", "")), l["name"],
                     "-" if l["diameter_mm"] is None else f"{l['diameter_mm']:.0f}",
                     vis["lesion_type"].replace("adenocarcinoma", "adeno"),
                     "none" if l["depth_mm"] is None else f"{l['depth_mm']:.0f}",
                     f"{vis['predicted']['category']} ({vis['predicted']['score']:.2f})",
                     "-" if meas.get("cnr") is None else f"{meas['cnr']:.2f} ({'seen' if meas['seen'] else 'not seen'})",
                     f"{sum(t['guidance'] == 'us' for t in l['trajectories'])}/"
                     f"{sum(t['guidance'] == 'ct' for t in l['trajectories'])}",
                     l["recommendation"]["guidance"]])
    h = min(0.04 + 0.022 * len(rows), max(0.08, y - 0.04))
    ax = fig.add_axes([0.05, y - h, 0.9, h])
    ax.axis("off")
    if rows:
        t = ax.table(cellText=rows, colLabels=cols, loc="upper center", cellLoc="center")
        t.auto_set_font_size(False)
        t.set_fontsize(6.5)
        t.scale(1, 1.2)



def _counts(d) -> str:
    """{'rib/bone': 299, 'lung': 40} -> 'rib/bone 299, lung 40' (dicts are not for readers)."""
    if not isinstance(d, dict):
        return str(d)
    return ", ".join(f"{str(k).replace('_', ' ')} {v}" for k, v in d.items()) or "nothing"


def _measured_text(m: dict) -> str:
    if not m.get("frames_cutting_lesion"):
        return "no registered frame cuts the lesion"
    seen = "seen" if m.get("seen") else "not seen"
    return (f"{m['frames_cutting_lesion']} frames cut the lesion; CNR {m.get('cnr')} ({seen}: |CNR| >= "
            f"{m.get('seen_threshold_cnr')}); lesion / liver ring mean {m.get('lesion_mean')} / "
            f"{m.get('ring_mean')}; best frame {m.get('best_frame')}")


def _fusion_text(f: dict, diameter_mm) -> str:
    def mm(v):
        return "unknown" if v is None else f"{float(v):.1f} mm"
    hp = f.get("hit_probability")
    text = (f"registration TRE {mm(f.get('tre_rms_mm'))} rms, total targeting error {mm(f.get('total_error_mm'))} "
            f"rms ({f.get('note', 'registration, tracking, needle and breathing errors in quadrature')})")
    if hp is not None:
        text += f"; hit probability {100 * float(hp):.0f} %" + (f" for a {diameter_mm} mm lesion" if diameter_mm else "")
    return text


def _lesion_pages(pdf, plan, anatomy, lesion_masks, Figure, sweep=None, reference_to_ct=None):
    ct = anatomy.ct
    for l in plan["lesions"]:
        chosen = []
        for g in ("us", "ct"):
            paths = [t for t in l["trajectories"] if t["guidance"] == g]
            chosen += paths[:1]
        fig = Figure(figsize=(8.27, 11.69))
        fig.text(0.05, 0.97, f"{l['name']}: recommendation {l['recommendation']['guidance'].upper()}",
                 fontsize=12, weight="bold", va="top")
        vis = l["visibility"]
        w = vis["window"]
        lines = [f"Target (LPS mm): {l['target_ct']}; diameter {l['diameter_mm']} mm; type {vis['lesion_type']} "
                 f"({vis['type_evidence']})",
                 f"Acoustic window: best depth {w['depth_mm']} mm (limit {vis['depth_limit_mm']} mm at "
                 f"{vis['frequency_mhz']} MHz); {w['windows_clear']}/{w['windows_checked']} probe directions "
                 f"clear; blocked by {_counts(w['obstruction_by'])}",
                 f"Predicted B-mode conspicuity: {vis['predicted']['category']} (score {vis['predicted']['score']}, "
                 f"factors {_counts(vis['predicted']['factors'])}; {vis['predicted']['model']})"]
        if vis.get("measured"):
            lines.append("Measured on the registered sweep: " + _measured_text(vis["measured"]))
        if vis.get("fusion"):
            lines.append("Fusion: " + _fusion_text(vis["fusion"], l.get("diameter_mm")))
        lines += [f"- {r}" for r in l["recommendation"]["reasons"]]
        lines += [f"! {a['text']} [evidence: {a['evidence']}]" for a in l["recommendation"]["advisories"]]
        cand = l["candidates"]
        lines.append(f"Candidates: {cand['checked']} checked, {cand['safe']} safe; rejected by "
                     f"{_counts(cand['rejected_by'])}")
        y = _text_block(fig, 0.05, 0.94, lines, 6.5, width=150)
        if not chosen:
            _text_block(fig, 0.05, y - 0.02, ["NO SAFE PATH: no trajectory is drawn for this lesion."], 10)
            y -= 0.04
        mask = (lesion_masks or {}).get(l["name"])
        best = (vis.get("measured") or {}).get("best_frame")
        if sweep is not None and reference_to_ct is not None and best is not None and mask is not None:
            ax = fig.add_axes([0.55, 0.02, 0.4, 0.22])
            _draw_us_overlay(ax, sweep, reference_to_ct, ct, mask, best, next(
                (t for t in l["trajectories"] if t["guidance"] == "us"), None))
            y = min(y, 0.97)
        layers = _layers(anatomy, mask)
        bottom = 0.26 if (sweep is not None and (vis.get("measured") or {}).get("best_frame") is not None) else 0.04
        row_h = min(0.26, (y - bottom) / max(1, len(chosen)))
        for n, tr in enumerate(chosen):
            top = y - 0.01 - n * row_h
            t = np.asarray(tr["target_ct"], float)
            e = np.asarray(tr["entry_ct"], float)
            d = (t - e) / np.linalg.norm(t - e)          # entry -> target (down the image)
            if tr["guidance"] == "us":
                normal = np.asarray(tr["probe"]["plane_normal_ct"], float)
                along_u = np.cross(d, normal)
                along_title = "US image plane (probe in-plane)"
            else:
                along_u = np.array([1.0, 0.0, 0.0])     # gantry plane: L-R across the image
                tau = np.radians(tr["ct"]["gantry_tilt_deg"])
                d = np.array([0.0, np.cos(tau), np.sin(tau)])   # posterior in the tilted plane
                along_title = f"CT gantry plane (tilt {tr['ct']['gantry_tilt_deg']:+.1f} deg)"
            along_u -= d * (along_u @ d)
            along_u /= np.linalg.norm(along_u)
            mid = 0.5 * (t + e)
            half = max(60.0, 0.5 * np.linalg.norm(t - e) + 25.0)
            axes = [fig.add_axes([0.05 + k * 0.31, top - row_h + 0.015, 0.29, row_h - 0.065]) for k in range(3)]
            ax_c = np.array([mid[0], mid[1], t[2]])   # axial plane through the target, path centred
            _draw_view(axes[0], ct, layers, ax_c, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                       f"axial at target, z = {t[2]:.1f} mm", tr, half_mm=half, probe=tr.get("probe"),
                       labels=("R", "L", "A", "P"))
            _draw_view(axes[1], ct, layers, mid, along_u, d, along_title, tr, half_mm=half,
                       probe=tr.get("probe"))
            dd = (e - t) / np.linalg.norm(e - t)
            cu = np.cross(dd, [0, 0, 1.0]) if abs(dd[2]) < 0.9 else np.cross(dd, [1.0, 0, 0])
            cu /= np.linalg.norm(cu)
            _draw_view(axes[2], ct, layers, t, cu, np.cross(dd, cu), "across the needle at the target",
                       None, half_mm=40.0)
            desc = (tr["ct"]["text"] if tr["guidance"] == "ct" else
                    f"probe at {tr['probe']['probe_ct']} (LPS), lesion depth {tr['probe']['depth_mm']} mm, "
                    f"needle {tr['probe']['needle_beam_angle_deg']} deg to the beam")
            _text_block(fig, 0.05, top, [
                f"{tr['guidance'].upper()} path: {tr['length_mm']} mm, {tr['needle']['gauge']}, liver "
                f"{tr['liver_traverse_mm']} mm, capsule {tr['capsule_angle_deg']} deg, clearance (mm) "
                + ", ".join(f"{k} {v:g}" for k, v in tr["clearance_mm"].items()) + f". {desc}"], 6, width=165)
        pdf.savefig(fig)


def _draw_us_overlay(ax, sweep, reference_to_ct, ct, lesion_mask, frame, path):
    """The registered US frame that cuts the lesion most, with the lesion outline from the CT
    labels and the needle path when it lies within 5 mm of the image plane."""
    img = sweep.frames[frame]
    image_to_ct = np.asarray(reference_to_ct, float) @ sweep.image_to_reference(frame)
    rows, cols = img.shape
    jj, ii = np.mgrid[0:rows:2, 0:cols:2]
    pix = np.stack([ii.ravel(), jj.ravel(), np.zeros(ii.size), np.ones(ii.size)])
    ijk = (ct.lps_to_ijk @ image_to_ct @ pix)[:3]
    kji = np.rint(ijk[::-1]).astype(int)
    ok = np.all((kji >= 0) & (kji < np.array(ct.array.shape)[:, None]), axis=0)
    inside = np.zeros(ii.size, bool)
    inside[ok] = lesion_mask[kji[0, ok], kji[1, ok], kji[2, ok]]
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    if inside.any():
        ax.contour(ii, jj, inside.reshape(ii.shape).astype(float), levels=[0.5], colors=["#ff3df5"],
                   linewidths=1.0)
    if path is not None:
        ct_to_image = np.linalg.inv(image_to_ct)
        z_mm = float(np.linalg.norm(image_to_ct[:3, 2]))
        pts = [ct_to_image @ np.append(np.asarray(path[k], float), 1.0) for k in ("entry_ct", "target_ct")]
        if all(abs(p[2]) * z_mm < 5.0 for p in pts):
            ax.plot([pts[0][0], pts[1][0]], [pts[0][1], pts[1][1]], color="#00ff66", lw=1.2)
    ax.set_title(f"registered US frame {frame} (lesion outline from CT)", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _registration_page(pdf, plan, Figure):
    reg = plan.get("registration")
    if not reg:
        return
    fig = Figure(figsize=(8.27, 11.69))
    fig.text(0.05, 0.97, "Registration quality", fontsize=12, weight="bold", va="top")
    m = np.asarray(reg["reference_to_ct"])
    lines = ["reference_to_ct (LPS mm, p_ct = M p_reference):"]
    lines += ["   " + "  ".join(f"{v:10.4f}" for v in row) for row in m]
    lines += [f"{k}: {v}" for k, v in reg.get("metrics", {}).items()]
    for l in plan["lesions"]:
        if l["visibility"].get("fusion"):
            lines.append(f"{l['name']}: {l['visibility']['fusion']}")
    _text_block(fig, 0.05, 0.93, lines, 8)
    pdf.savefig(fig)


def render_pdf(plan: dict, anatomy, lesion_masks: Optional[Dict[str, np.ndarray]] = None,
               sweep=None, reference_to_ct=None) -> bytes:
    """The report as PDF bytes (the caller writes them atomically).

    With a registered ``sweep`` the lesion pages add the US frame that cuts the
    lesion most, with the CT lesion outline and the US path drawn on it.
    """
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": "CT-US biopsy plan", "Creator": f"ctus {plan['software']['version']}"}) as pdf:
        fig = Figure(figsize=(8.27, 11.69))
        _summary_page(fig, plan)
        pdf.savefig(fig)
        _lesion_pages(pdf, plan, anatomy, lesion_masks, Figure, sweep, reference_to_ct)
        _registration_page(pdf, plan, Figure)
    return buf.getvalue()
