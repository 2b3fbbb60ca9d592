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

import contextlib
import io
import json
import logging
import os
import textwrap
from typing import Dict, Optional

import numpy as np

from planner.paths.clearance import CAP_MM
from planner.paths.rejected import rejected_path_lines

from .report_views import draw_path_row, draw_us_overlay, layers_of


def _text_block(fig, x, y, lines, size=7.0, width=120, dy=None):
    """Write ``lines`` wrapped at ``width`` characters from figure position (x, y) down;
    returns the y below the last line."""
    dy = dy or size * 0.0019
    for line in lines:
        for k, part in enumerate(textwrap.wrap(line, width) or [""]):
            fig.text(x + (0.02 if k else 0.0), y, part, fontsize=size, va="top")
            y -= dy
    return y


def _constraints_text(c: dict) -> str:
    """The plan's rules in one line: which are hard (a path breaking them is unsafe) and which soft."""
    floor = c.get("vessel_floor_mm")
    hard = (f"HARD: needle {c['needle_gauge']} of {c['max_length_mm']:g} mm; no bone, lung, gallbladder, bowel, "
            "kidney, heart, spleen, pancreas; no vessel >= 3 mm crossed"
            + (f" nor passed within {floor:g} mm" if floor else "") + "; one capsule crossing"
            + (f", not grazing (> {c['grazing_angle_deg']:g} deg)" if "grazing_angle_deg" in c else ""))
    soft = (f"SOFT (ranked, shown as cautions): >= {c['vessel_margin_mm']:g} mm from vessels >= 3 mm, >= "
            f"{c['min_liver_mm']:g} mm normal liver, capsule angle <= {c['max_capsule_angle_deg']:g} deg")
    tilt = f"; CT gantry tilt <= {c['max_gantry_tilt_deg']:g} deg (steeper: double oblique)" \
        if "max_gantry_tilt_deg" in c else ""
    return (f"Constraints - {hard}. {soft}. Checked every {c['step_mm']} mm at full label resolution; patient "
            f"{c.get('patient_position', 'supine')}{tilt}")


def _guidance_cell(rec: dict) -> str:
    """The lesion table's guidance: conditional advice says its condition."""
    g = rec["guidance"]
    cond = rec.get("condition")
    return f"{g} if TRE <= {cond['max_tre_rms_mm']:g} mm" if cond else g


def _predicted_cell(pred: dict) -> str:
    """Category and probability of the evidence model (or the score of a pre-1.2 plan)."""
    p = pred.get("probability", pred.get("score"))
    return pred["category"] + ("" if p is None else f" ({p:.2f})")


def _paths_cell(paths: list) -> str:
    """US/CT counts of safe paths, and the unsafe least-risk path if any."""
    safe = [t for t in paths if t.get("safe", True) is not False]
    text = f"{sum(t['guidance'] == 'us' for t in safe)}/{sum(t['guidance'] == 'ct' for t in safe)}"
    unsafe = len(paths) - len(safe)
    return text + (f" +{unsafe} UNSAFE" if unsafe else "")


def anatomy_source_text(plan: dict) -> str:
    """Where the plan's anatomy came from, for the report ('' when plan.json does not say):
    an automatic segmentation is named with its review state, because its structures were
    checked by nobody and every path is only as safe as they are."""
    src = plan.get("anatomy_source") or {}
    if src.get("source") == "automatic segmentation":
        state = "reviewed" if src.get("reviewed") else "not reviewed: check the structures before use"
        return f"ANATOMY: automatic segmentation, {state}"
    if src.get("source"):
        return f"Anatomy source: {src['source']}" + (f" ({os.path.basename(src['path'])})" if src.get("path") else "")
    return ""


def _summary_page(fig, plan):
    """Page 1: case and data, constraints, the case recommendation with its reasons and
    advisories, and the lesion table ranked by accessibility."""
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
    lines.append(_constraints_text(plan["constraints"]))
    source = anatomy_source_text(plan)
    if source:
        lines.insert(3, source)
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
                     _predicted_cell(vis["predicted"]),
                     "-" if meas.get("cnr") is None else f"{meas['cnr']:.2f} ({'seen' if meas['seen'] else 'not seen'})",
                     _paths_cell(l["trajectories"]), _guidance_cell(l["recommendation"])])
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
    """The conspicuity measured on the registered sweep, as a sentence."""
    if not m.get("frames_cutting_lesion"):
        return "no registered frame cuts the lesion"
    seen = "seen" if m.get("seen") else "not seen"
    return (f"{m['frames_cutting_lesion']} frames cut the lesion; CNR {m.get('cnr')} ({seen}: |CNR| >= "
            f"{m.get('seen_threshold_cnr')}); lesion / liver ring mean {m.get('lesion_mean')} / "
            f"{m.get('ring_mean')}; best frame {m.get('best_frame')}")


def _fusion_text(f: dict, diameter_mm) -> str:
    """The fusion error and hit probability at a lesion, as a sentence (mm, %)."""
    def mm(v):
        return "unknown" if v is None else f"{float(v):.1f} mm"
    hp = f.get("hit_probability")
    text = (f"registration TRE {mm(f.get('tre_rms_mm'))} rms, total targeting error {mm(f.get('total_error_mm'))} "
            f"rms ({f.get('note', 'registration, tracking, needle and breathing errors in quadrature')})")
    if hp is not None:
        text += f"; hit probability {100 * float(hp):.0f} %" + (f" for a {diameter_mm} mm lesion" if diameter_mm else "")
    if f.get("extrapolated"):
        d = f.get("distance_to_imaged_region_mm")
        text += ("; EXTRAPOLATED" + ("" if d is None else f" ({float(d):.0f} mm from the imaged region)")
                 + ": the error there is the model's inflated estimate, not measured; sweep over the lesion")
    return text


def _predicted_text(pred: dict) -> str:
    """The evidence model's probability, category and every term with its source."""
    if "terms" not in pred:      # a plan written before format 1.2
        return f"{pred['category']} (score {pred.get('score')})"
    terms = "; ".join(f"{t['name']} {t['value']:.2f} ({t['detail']}) [{t['source']}]" for t in pred["terms"])
    return f"{pred['category']} (p = {pred['probability']:.2f}): {terms}"


def _lesion_lines(l: dict) -> list:
    """The text of a lesion page: target, window, conspicuity, fusion, reasons, advisories, candidates."""
    vis = l["visibility"]
    w = vis["window"]
    lines = [f"Target (LPS mm): {l['target_ct']}; diameter {l['diameter_mm']} mm; type {vis['lesion_type']} "
             f"({vis['type_evidence']})",
             f"Acoustic window: best depth {w['depth_mm']} mm (limit {vis['depth_limit_mm']} mm at "
             f"{vis['frequency_mhz']} MHz); {w['windows_clear']}/{w['windows_checked']} probe directions "
             f"clear; blocked by {_counts(w['obstruction_by'])}",
             "Predicted B-mode visibility: " + _predicted_text(vis["predicted"])]
    if vis.get("fatty_liver"):
        lines.append(f"Fatty liver: {vis['fatty_liver']['note']} [{vis['fatty_liver']['source']}]")
    if vis.get("measured"):
        lines.append("Measured on the registered sweep: " + _measured_text(vis["measured"]))
    if vis.get("fusion_need"):
        n = vis["fusion_need"]
        lines.append(f"Fusion need: {n['explanation']}; without a registration compared with the "
                     f"{n.get('expected_without_registration', 'clinical fusion error')}")
    if vis.get("fusion"):
        lines.append("Fusion: " + _fusion_text(vis["fusion"], l.get("diameter_mm")))
    cond = l["recommendation"].get("condition")
    if cond:
        lines.append(f"CONDITIONAL: {cond['text']}")
    lines += [f"- {r}" for r in l["recommendation"]["reasons"]]
    lines += [f"! {a['text']} [evidence: {a['evidence']}]" for a in l["recommendation"]["advisories"]]
    cand = l["candidates"]
    lines.append(f"Candidates: {cand['checked']} checked, {cand['safe']} safe; rejected by "
                 f"{_counts(cand['rejected_by'])}")
    return lines


def _path_caption(tr: dict) -> str:
    """One trajectory's numbers (mm, deg), its probe pose or CT-guided description, and its
    violations (an unsafe least-risk path) or cautions."""
    if tr["guidance"] == "ct" or not tr.get("probe"):
        desc = (tr.get("ct") or {}).get("text", "")
    else:
        desc = (f"probe at {tr['probe']['probe_ct']} (LPS), lesion depth {tr['probe']['depth_mm']} mm, "
                f"needle {tr['probe']['needle_beam_angle_deg']} deg to the beam")
    head = ("UNSAFE LEAST-RISK " if tr.get("safe", True) is False else "") + f"{tr['guidance'].upper()} path"
    text = (f"{head}: {tr['length_mm']} mm, {tr['needle']['gauge']}, liver {tr['liver_traverse_mm']} mm, capsule "
            f"{tr['capsule_angle_deg']} deg, clearance (mm, axis to voxel centres) "
            + ", ".join(f"{k} {'>= ' if v >= CAP_MM else ''}{v:g}" for k, v in tr["clearance_mm"].items())
            + f". {desc}")
    if tr.get("violations"):
        text += " VIOLATES: " + "; ".join(v["text"] for v in tr["violations"]) + "."
    if tr.get("cautions"):
        text += " Cautions: " + "; ".join(v["text"] for v in tr["cautions"]) + "."
    return text


def _lesion_pages(pdf, plan, anatomy, lesion_masks, Figure, sweep=None, reference_to_ct=None, only=None):
    """One page per lesion (``only``: these indices of ``plan['lesions']``): its text, its best US
    and best CT path on CT planes, and (with a registered sweep) the US frame that cuts it most."""
    ct = anatomy.ct
    for n, l in enumerate(plan["lesions"]):
        if only is not None and n not in only:
            continue
        chosen = []
        for g in ("us", "ct"):
            paths = [t for t in l["trajectories"] if t["guidance"] == g and t.get("safe", True) is not False]
            chosen += paths[:1]
        chosen += [t for t in l["trajectories"] if t.get("safe", True) is False][:1]
        fig = Figure(figsize=(8.27, 11.69))
        fig.text(0.05, 0.97, f"{l['name']}: recommendation {_guidance_cell(l['recommendation']).upper()}",
                 fontsize=12, weight="bold", va="top")
        vis = l["visibility"]
        y = _text_block(fig, 0.05, 0.94, _lesion_lines(l), 6.5, width=150)
        if not any(t.get("safe", True) is not False for t in chosen):
            _text_block(fig, 0.05, y - 0.02, ["NO SAFE PATH" + (": the least-risk path below is UNSAFE and is "
                                                               "not a plan" if chosen else
                                                               ": no trajectory is drawn for this lesion.")], 10)
            y -= 0.04
        rejected = l.get("rejected_candidates") or []
        if rejected:
            y = _text_block(fig, 0.05, y - 0.01, ["Other rejected paths, closest first (none is a plan):"]
                            + ["  " + line for line in rejected_path_lines(rejected)], 6, width=165)
        mask = (lesion_masks or {}).get(l["name"])
        best = (vis.get("measured") or {}).get("best_frame")
        if sweep is not None and reference_to_ct is not None and best is not None and mask is not None:
            ax = fig.add_axes([0.55, 0.02, 0.4, 0.22])
            draw_us_overlay(ax, sweep, reference_to_ct, ct, mask, best, next(
                (t for t in l["trajectories"] if t["guidance"] == "us" and t.get("safe", True) is not False), None))
            y = min(y, 0.97)
        layers = layers_of(anatomy, mask)
        bottom = 0.26 if (sweep is not None and best is not None) else 0.04
        row_h = min(0.26, (y - bottom) / max(1, len(chosen)))
        for n, tr in enumerate(chosen):
            top = y - 0.01 - n * row_h
            below = _text_block(fig, 0.05, top, [_path_caption(tr)], 6, width=165)
            draw_path_row(fig, ct, layers, tr, top, row_h, text_h=top - below + 0.02)
        pdf.savefig(fig)



def _registration_page(pdf, plan, Figure):
    """Last page when registered: reference_to_ct, the registration's metrics and each lesion's fusion error."""
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
            lines.append(f"{l['name']}: " + _fusion_text(l["visibility"]["fusion"], l.get("diameter_mm")))
    _text_block(fig, 0.05, 0.93, lines, 8)
    pdf.savefig(fig)


def render_pdf(plan: dict, anatomy, lesion_masks: Optional[Dict[str, np.ndarray]] = None,
               sweep=None, reference_to_ct=None, *, workers: int = 1) -> bytes:
    """The report as PDF bytes (the caller writes them atomically).

    With a registered ``sweep`` the lesion pages add the US frame that cuts the
    lesion most, with the CT lesion outline and the US path drawn on it. ``workers`` 2:
    the lesion pages are shared with a forked process and the pages joined
    (:mod:`.report_split`; only where forking is safe: the command line, not the GUI).
    """
    def part(lesions=None, summary=True, registration=True) -> bytes:
        return _render_part(plan, anatomy, lesion_masks, sweep, reference_to_ct, lesions, summary, registration)
    if workers > 1 and len(plan["lesions"]) > 1:
        from .report_split import render_in_two
        return render_in_two(part, plan, title=_TITLE, creator=_creator(plan), prepare=prepare)
    return part()


_TITLE = "CT-US biopsy plan"
#: The PDF's fonts: the standard Helvetica every PDF reader has (not embedded), so text is laid
#: out from its metrics and written as strings instead of glyph by glyph (issue 16: text was a
#: third of the report's time). It only has the Windows-1252 characters: a plan with any other
#: (a lesion named in another script) is drawn with the embedded DejaVu Sans (:func:`pdf_rc`).
_PDF_RC = {"pdf.use14corefonts": True, "font.family": "sans-serif", "font.sans-serif": ["Helvetica"]}
_EMBEDDED_RC = {"pdf.use14corefonts": False, "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}


def pdf_rc(plan: dict) -> dict:
    """The matplotlib settings the report of ``plan`` is drawn with: the standard Helvetica when
    every string of the plan is in Windows-1252 (what it can show), else the embedded DejaVu Sans."""
    try:
        json.dumps(plan, ensure_ascii=False).encode("cp1252")
    except UnicodeEncodeError:
        return _EMBEDDED_RC
    return _PDF_RC


def _creator(plan: dict) -> str:
    return f"ctus {plan['software']['version']}"


def prepare() -> None:
    """Import the PDF backend and look up the report's fonts now (once per process): the command
    line calls it from a thread while it plans, and :mod:`.report_split` before forking, so that
    the forked process inherits them."""
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.backends import backend_pdf  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401
    with matplotlib.rc_context(_PDF_RC), _quiet_font_lookup():
        for weight in ("normal", "bold"):
            font_manager.findfont(font_manager.FontProperties(weight=weight), fontext="afm")


@contextlib.contextmanager
def _quiet_font_lookup():
    """Silence matplotlib's font-manager warnings while the report is drawn: the standard
    Helvetica's metrics file calls its weight "Medium", so every lookup of the "normal" weight
    logs a fallback to it (the right font; nothing to tell the user)."""
    log = logging.getLogger("matplotlib.font_manager")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _render_part(plan, anatomy, lesion_masks, sweep, reference_to_ct, lesions, summary: bool,
                 registration: bool) -> bytes:
    """The summary page (``summary``), the pages of the lesions with indices ``lesions`` (None: all)
    and the registration page (``registration``, when registered), as one PDF."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    buf = io.BytesIO()
    with matplotlib.rc_context(pdf_rc(plan)), _quiet_font_lookup(), \
            PdfPages(buf, metadata={"Title": _TITLE, "Creator": _creator(plan)}) as pdf:
        if summary:
            fig = Figure(figsize=(8.27, 11.69))
            _summary_page(fig, plan)
            pdf.savefig(fig)
        _lesion_pages(pdf, plan, anatomy, lesion_masks, Figure, sweep, reference_to_ct,
                      only=None if lesions is None else set(lesions))
        if registration:
            _registration_page(pdf, plan, Figure)
    return buf.getvalue()
