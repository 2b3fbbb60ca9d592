"""The PDF report rendered by two processes: the lesion pages shared out, the pages joined in order.

Drawing the pages (matplotlib text layout, contours, CT planes) is most of the
PDF's time and single-threaded, and the pages do not depend on each other. The
command line (a process of its own) therefore forks once: the child renders
about half of the lesion pages, the parent the summary page, the other lesion
pages and the registration page, and the pages are joined in the report's
order with pypdf (page objects copied, nothing re-drawn). Lesions are shared out
by the number of CT-plane rows each page draws. If the child fails, the parent
renders its pages itself: the report is the same, only slower. Not for the GUI:
forking a process that runs Qt is not safe.
"""
from __future__ import annotations

import io
import os
from typing import Callable, List, Tuple


def page_rows(lesion: dict) -> int:
    """CT-plane rows of a lesion's page (its best safe US and CT paths and its unsafe one), + 1 for the text."""
    safe = [t for t in lesion["trajectories"] if t.get("safe", True) is not False]
    rows = sum(any(t["guidance"] == g for t in safe) for g in ("us", "ct"))
    return 1 + rows + any(t.get("safe", True) is False for t in lesion["trajectories"])


def share_out(plan: dict) -> Tuple[List[int], List[int]]:
    """(the parent's lesion indices, the child's): balanced by :func:`page_rows`, the parent
    also drawing the summary (and registration) page, worth 2 rows."""
    weights = [page_rows(l) for l in plan["lesions"]]
    mine, theirs, load = [], [], [2.0, 0.0]
    for n in sorted(range(len(weights)), key=lambda k: -weights[k]):
        side = 0 if load[0] <= load[1] else 1
        (mine if side == 0 else theirs).append(n)
        load[side] += weights[n]
    return sorted(mine), sorted(theirs)


def render_in_two(part: Callable[..., bytes], plan: dict, *, title: str, creator: str,
                  prepare: Callable[[], None] = lambda: None) -> bytes:
    """The report of ``part(lesions, summary, registration) -> PDF bytes`` rendered by this process
    and a forked one, joined: summary, the lesion pages in plan order, registration page.
    ``prepare()`` runs before the fork (imports and fonts the child then inherits)."""
    mine, theirs = share_out(plan)
    if not theirs or not hasattr(os, "fork"):
        return part()
    prepare()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child: render, send, leave without cleanup
        code = 1
        try:
            os.close(r)
            data = part(theirs, False, False)
            with os.fdopen(w, "wb") as f:
                f.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        own = part(mine, True, True)
    finally:
        with os.fdopen(r, "rb") as f:
            other = f.read()
        _, status = os.waitpid(pid, 0)
    if status != 0 or not other:
        other = part(theirs, False, False)
    return join(own, other, mine, theirs, n_lesions=len(plan["lesions"]), title=title, creator=creator)


def join(own: bytes, other: bytes, mine: List[int], theirs: List[int], *, n_lesions: int, title: str,
         creator: str) -> bytes:
    """One PDF: ``own``'s first page (summary), the lesion pages (``own`` holds ``mine``, ``other``
    ``theirs``, each in index order) in lesion order, then ``own``'s remaining pages (registration)."""
    from pypdf import PdfReader, PdfWriter
    a, b = PdfReader(io.BytesIO(own)), PdfReader(io.BytesIO(other))
    where = {n: (a, 1 + k) for k, n in enumerate(mine)}
    where.update({n: (b, k) for k, n in enumerate(theirs)})
    writer = PdfWriter()
    writer.add_page(a.pages[0])
    for n in range(n_lesions):
        reader, k = where[n]
        writer.add_page(reader.pages[k])
    for page in a.pages[1 + len(mine):]:
        writer.add_page(page)
    writer.add_metadata({"/Title": title, "/Creator": creator, "/Producer": "ctus (matplotlib pages, pypdf)"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
