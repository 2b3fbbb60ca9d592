"""The PDF report rendered by two processes: the same pages, in order, as rendered by one."""
from __future__ import annotations

import io
import os

import pytest
from pypdf import PdfReader

from planner.export import report_split
from planner.export.report_pdf import render_pdf
from planning_phantom import planned_phantom

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture(scope="module")
def planned():
    ct, lm, res = planned_phantom()
    plan = dict(res.plan)
    # two more lesion pages (copies of the phantom's), so both processes have lesions to draw
    plan["lesions"] = res.plan["lesions"] + [dict(res.plan["lesions"][0], name="copy_a"),
                                             dict(res.plan["lesions"][-1], name="copy_b")]
    masks = dict(res.lesion_masks, copy_a=res.lesion_masks[res.plan["lesions"][0]["name"]],
                 copy_b=res.lesion_masks[res.plan["lesions"][-1]["name"]])
    return plan, res.anatomy, masks


def _pages(pdf: bytes):
    return [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]


@pytest.mark.slow
def test_two_processes_give_the_pages_of_one_in_the_same_order(planned):
    plan, anatomy, masks = planned
    one = _pages(render_pdf(plan, anatomy, masks))
    two = _pages(render_pdf(plan, anatomy, masks, workers=2))
    assert len(one) == 1 + len(plan["lesions"]) and two == one
    assert all(f"{l['name']}: recommendation" in page for l, page in zip(plan["lesions"], two[1:]))
    mine, theirs = report_split.share_out(plan)
    assert mine and theirs and sorted(mine + theirs) == list(range(len(plan["lesions"])))


@pytest.mark.slow
def test_a_failing_child_leaves_the_report_whole(planned):
    plan, anatomy, masks = planned
    parent = os.getpid()
    from planner.export.report_pdf import _render_part

    def part(lesions=None, summary=True, registration=True):
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return _render_part(plan, anatomy, masks, None, None, lesions, summary, registration)
    pdf = report_split.render_in_two(part, plan, title="t", creator="c")
    assert _pages(pdf) == _pages(render_pdf(plan, anatomy, masks))


def test_lesions_are_shared_by_the_rows_their_pages_draw():
    lesion = {"trajectories": [{"guidance": "us", "safe": True}, {"guidance": "us", "safe": True},
                               {"guidance": "ct", "safe": True}]}
    bare = {"trajectories": []}
    unsafe = {"trajectories": [{"guidance": "ct", "safe": False}]}
    assert [report_split.page_rows(x) for x in (lesion, bare, unsafe)] == [3, 1, 2]
    mine, theirs = report_split.share_out({"lesions": [lesion, lesion, bare, bare]})
    # the parent starts with the summary page (2 rows), so the first 3-row page goes to the child:
    # 2 + 3 against 3 + 1 + 1
    assert (mine, theirs) == ([1], [0, 2, 3])
