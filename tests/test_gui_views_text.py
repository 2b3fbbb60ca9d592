"""Text on the ultrasound view fits or wraps, never clips (issue 20, item 2): the steering hint
keeps its direction and the big "overlay off" banner stays whole, even in a narrow view; a
wrapped line never separates a number from its unit.

A 12 mm-radius lesion 40 mm out of the frame plane; the frame is an axial plane (0.5 mm pixels).
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QRectF
from PyQt5.QtGui import QFont, QFontMetricsF, QTextLayout, QTextOption

from gui.core.session import RegistrationState
from gui.views.us_view import USView
from gui.views.view_text import PAD_X, PAD_Y, WRAP, keep_units
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui


def _case():
    shape = (81, 101, 121)                           # [k, j, i], 1 mm voxels
    origin = np.array([-60.0, -50.0, -40.0])
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2], kji[1], kji[0]], -1) + origin
    inside = np.linalg.norm(lps - [0.0, 0.0, 25.0], axis=-1) < 12.0
    ct = Volume(np.where(inside, 200, 60).astype(np.int16), (1, 1, 1), origin)
    labels = LabelMap(np.where(inside, 2, 1).astype(np.uint8), (1, 1, 1), origin,
                      names={"liver": 1, "lesion_4": 2})
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 0.5
    m[:3, 3] = [-40.0, -30.0, -15.0]                 # z = -15: 40 mm below the lesion centre
    return ct, labels, m


def _fits(view, text: str, box: QRectF) -> bool:
    """The text's wrapped layout at the box's inner width fits the box's height, and the box
    lies in the view."""
    fm = QFontMetricsF(_font_of(view))
    need = fm.boundingRect(QRectF(0, 0, box.width() - 2 * PAD_X, 1e6), int(WRAP), keep_units(text)).height()
    need += 2 * PAD_Y
    return need <= box.height() + 0.5 and QRectF(view.rect()).contains(box)


def _font_of(view):
    f = QFont(view.font())
    f.setPointSize(10)
    return f


@pytest.mark.parametrize("width", [300, 420, 1600])
def test_steering_hint_keeps_its_direction(qtbot, width):
    ct, labels, image_to_ct = _case()
    us = USView()
    qtbot.addWidget(us)
    us.resize(width, 420)
    us.set_ct(ct, labels)
    us.set_registration(RegistrationState(np.eye(4), "landmarks", tre_mm=3.1, fre_mm=1.2, verdict="check"))
    us.set_frame(np.full((160, 200), 90, np.uint8), 0, 1, 0.0, image_to_ct)
    us.show()
    qtbot.waitExposed(us)
    assert us.lesion_messages == ["lesion_4: 40 mm out of plane, tilt/slide towards the head"]
    us.grab()                                   # paints now, records the texts drawn
    drawn = dict(us.drawn_text)
    hint = us.lesion_messages[0]
    assert hint in drawn, list(drawn)                 # the whole sentence, direction included
    assert _fits(us, hint, drawn[hint]), (drawn[hint], width)
    # The hint is below the frame, not over it.
    assert drawn[hint].top() >= us.frame_rect().bottom()
    for text, box in us.drawn_text:
        assert QRectF(us.rect()).contains(box), (text, box)


@pytest.mark.parametrize("width", [260, 900])
def test_overlay_off_banner_is_whole(qtbot, width):
    ct, labels, image_to_ct = _case()
    us = USView()
    qtbot.addWidget(us)
    us.resize(width, 360)
    us.set_ct(ct, labels)
    us.set_registration(RegistrationState(np.eye(4), "landmarks", tre_mm=3.1))
    us.set_frame(np.full((160, 200), 90, np.uint8), 4, 9, 0.2, None,
                 tracking_reason="tracking stale: no update for 350 ms from the probe tracker")
    us.show()
    qtbot.waitExposed(us)
    us.grab()                                   # paints now, records the texts drawn
    reason = "tracking stale: no update for 350 ms from the probe tracker: overlay off"
    assert us.reason_text == reason
    boxes = [box for text, box in us.drawn_text if text == reason]
    assert len(boxes) == 2                           # the status line and the big banner
    big = boxes[-1]                                  # drawn after the status line
    bold = _font_of(us)
    bold.setPointSize(13)
    bold.setBold(True)
    fm = QFontMetricsF(bold)
    need = fm.boundingRect(QRectF(0, 0, big.width() - 2 * PAD_X, 1e6), int(WRAP), keep_units(reason)).height()
    need += 2 * PAD_Y
    assert need <= big.height() + 0.5 and QRectF(us.rect()).contains(big), (big, need)
    if width < 400:
        assert big.height() > 2 * fm.height()        # wrapped onto several lines rather than clipped


def _lines(text: str, width: float, font: QFont) -> list:
    """The lines Qt's word wrap makes of ``text`` at ``width`` px."""
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WordWrap)
    layout.setTextOption(option)
    layout.beginLayout()
    out = []
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        out.append(text[line.textStart():line.textStart() + line.textLength()])
    layout.endLayout()
    return out


def test_a_number_keeps_its_unit_when_text_wraps(qtbot):
    # "ground truth (test), within ~0.5 / mm" was drawn with the unit alone on the second line.
    font = QFont()
    font.setPointSize(10)
    text = "Overlay (blend) | ground truth (test), within ~0.5 mm, t 0.40 s"
    fm = QFontMetricsF(font)
    broke_plain = False
    for width in range(60, int(fm.horizontalAdvance(text)) + 10, 3):
        kept = _lines(keep_units(text), width, font)
        assert "".join(kept).replace("\u00a0", " ") == text
        for a, b in zip(kept, kept[1:]):
            assert not (a.rstrip()[-1:].isdigit() and b.split()[0] in ("mm", "s")), (width, kept)
        plain = _lines(text, width, font)
        broke_plain |= any(b.startswith(("mm", "s ")) for b in plain[1:])
    assert broke_plain                       # the plain text did break there at some width
