"""The PDF report's pages: its fonts (standard Helvetica for Windows-1252 text, embedded DejaVu otherwise),
its outlines drawn where the mask is (issue 16 made both cheaper; neither may change what is shown) and
the rejected paths of a lesion without a safe path."""
from __future__ import annotations

import io

import numpy as np
import pytest
from pypdf import PdfReader

from planner.export.report_pdf import pdf_rc, render_pdf
from planner.export.report_views import _outline
from planning_phantom import planned_phantom


@pytest.fixture(scope="module")
def planned():
    _, _, res = planned_phantom()
    return res


def _fonts(pdf: bytes) -> set:
    out = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        fonts = page["/Resources"].get("/Font") or {}
        out |= {str(f.get_object()["/BaseFont"]) for f in fonts.values()}
    return out


def test_plan_in_windows_1252_uses_the_standard_helvetica(planned):
    assert pdf_rc(planned.plan)["pdf.use14corefonts"] is True
    pdf = render_pdf(planned.plan, planned.anatomy, planned.lesion_masks)
    fonts = _fonts(pdf)
    assert fonts and all("Helvetica" in f for f in fonts), fonts
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert planned.plan["lesions"][0]["name"] in text and "?" * 2 not in text


def test_a_name_outside_windows_1252_is_drawn_with_an_embedded_font(planned):
    plan = dict(planned.plan)
    first = plan["lesions"][0]
    plan["lesions"] = [dict(first, name="\u043e\u0447\u0430\u0433_1")] + plan["lesions"][1:]   # a lesion named in Russian
    masks = dict(planned.lesion_masks, **{"\u043e\u0447\u0430\u0433_1": planned.lesion_masks[first["name"]]})
    assert pdf_rc(plan)["pdf.use14corefonts"] is False
    fonts = _fonts(render_pdf(plan, planned.anatomy, masks))
    assert any("DejaVu" in f for f in fonts) and not any("Helvetica" in f for f in fonts), fonts


class _Axes:
    def __init__(self):
        self.lines = []

    def plot(self, x, y, **kw):
        self.lines.append((np.asarray(x), np.asarray(y)))


def test_outline_lies_half_way_between_inside_and_outside_samples():
    # 81 samples over +-20 mm (0.5 mm apart); the mask holds columns 40..60 and rows 20..40
    m = np.zeros((81, 81), np.uint8)
    m[20:41, 40:61] = 1
    ax = _Axes()
    _outline(ax, m, 20.0, "r", 1.0)
    (x, y), = ax.lines
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    # samples at -20 + 0.5 c mm: inside from c = 40 (0 mm) to 60 (10 mm), the edge half a sample out
    assert x.min() == pytest.approx(-0.25) and x.max() == pytest.approx(10.25)
    assert y.min() == pytest.approx(-10.25) and y.max() == pytest.approx(0.25)


def test_lesion_page_lists_the_rejected_paths_with_their_violations(planned):
    """A lesion without a safe path: its page says which other paths came closest and what each
    breaks (plan.json ``rejected_candidates``), as ``ctus plan`` prints them."""
    plan = dict(planned.plan)
    first = dict(plan["lesions"][0])
    first["rejected_candidates"] = [{
        "entry_ct": [16.55, -114.6, 21.15], "target_ct": [-5.11, 22.07, 15.18], "direction_ct": [0.156, -0.987, 0.043],
        "length_mm": 138.5, "safe": False, "score": 1.47, "cautions": [], "texts": [],
        "violations": [{"rule": "vessel", "structure": "hepatic_vein", "value_mm": 3.01, "limit_mm": 3.86,
                        "value": 3.01, "limit": 3.86, "unit": "mm", "text": "passes 3.0 mm from the hepatic_vein"}]}]
    plan["lesions"] = [first] + plan["lesions"][1:]
    pdf = render_pdf(plan, planned.anatomy, planned.lesion_masks)
    page = PdfReader(io.BytesIO(pdf)).pages[1].extract_text()
    assert "Other rejected paths" in page and "138 mm from entry (16.6, -114.6, 21.1)" in page.replace("\n", " ")
    assert "hepatic vein" in page
