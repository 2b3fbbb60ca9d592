"""The mouse tools of the Segmentation panel on the slice views, and its lesion table.

* :class:`BrushFilter`: an event filter on each slice view. While the Paint or
  Erase tool is on, a left press starts a stroke, dragging paints discs of the
  brush radius (mm) in the view's plane and the release ends the stroke (one
  undo step); other buttons keep their view functions (zoom, pan). With the
  Navigate or Lesion tools it lets every event through (a click then reaches
  the view, which emits ``point_clicked``).
* :class:`BrushCursor`: a transparent child of a slice view drawing the brush
  circle at its true size under the mouse.
* :class:`LesionRows`: the table of lesions grown from a click (name editable,
  diameter, volume, mean HU, contrast, kind), from ``EditableLabels.lesion_rows``.

The slice views are not changed: the filter uses their public geometry
(``widget_to_lps``, ``image_rect``, ``display``) and signals.
"""
from __future__ import annotations

from typing import Callable, Optional

from PyQt5.QtCore import QEvent, QObject, QPointF, Qt
from PyQt5.QtGui import QColor, QPainter, QPen
from PyQt5.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from gui.views.display import NORMAL_AXIS

LESION_COLUMNS = ("lesion", "diameter mm", "volume ml", "mean HU", "contrast HU", "kind")


def mm_per_widget_px(view) -> float:
    """Millimetres per widget pixel of a slice view (square display pixels)."""
    r = view.image_rect()
    x, y, z = view.display.grid.size_xyz
    cols = {"axial": x, "coronal": x, "sagittal": y}[view.view]
    col_mm, _ = view.display.pixel_spacing(view.view)
    return cols * col_mm / max(r.width(), 1e-6)


class BrushCursor(QWidget):
    """The brush circle over a slice view (mouse events pass through to the view)."""

    def __init__(self, view):
        super().__init__(view)
        self.view = view
        self.setObjectName(f"brush_cursor_{view.view}")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WA_NoSystemBackground)
        self.centre: Optional[QPointF] = None
        self.radius_mm = 5.0
        self.colour = QColor(255, 255, 0)
        self.resize(view.size())

    def paintEvent(self, event):  # noqa: N802
        if self.centre is None or self.view.display is None:
            return
        r_px = self.radius_mm / mm_per_widget_px(self.view)
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(self.colour, 1.5))
        p.drawEllipse(self.centre, r_px, r_px)
        p.end()


class BrushFilter(QObject):
    """Paint / erase strokes on the slice views for the panel (see the module docstring).
    ``panel`` gives ``tool`` ("paint" / "erase" / other), ``brush_mm`` and the ``dab(view, lps)``,
    ``stroke_started()`` and ``stroke_ended()`` callbacks."""

    def __init__(self, panel, views):
        super().__init__(panel)
        self.panel = panel
        self.cursors = {}
        self.stroking = None
        for view in views:
            view.setMouseTracking(True)
            view.installEventFilter(self)
            self.cursors[view] = BrushCursor(view)

    def active(self) -> bool:
        return self.panel.tool in ("paint", "erase")

    def eventFilter(self, obj, event):  # noqa: N802
        cursor = self.cursors.get(obj)
        if cursor is None:
            return False
        t = event.type()
        if t == QEvent.Resize:
            cursor.resize(obj.size())
            return False
        if t == QEvent.Leave:
            cursor.centre = None
            cursor.update()
            return False
        if not self.active() or obj.display is None:
            if cursor.centre is not None:
                cursor.centre = None
                cursor.update()
            return False
        if t == QEvent.MouseMove:
            cursor.centre = QPointF(event.pos())
            cursor.radius_mm = self.panel.brush_mm()
            cursor.colour = QColor(255, 80, 80) if self.panel.tool == "erase" else QColor(255, 255, 0)
            cursor.raise_()
            cursor.update()
            if self.stroking is obj and event.buttons() & Qt.LeftButton:
                self.panel.dab(obj, obj.widget_to_lps(event.pos()))
                return True
            return False
        if t == QEvent.MouseButtonPress and event.button() == Qt.LeftButton:
            self.stroking = obj
            self.panel.stroke_started()
            self.panel.dab(obj, obj.widget_to_lps(event.pos()))
            return True
        if t == QEvent.MouseButtonRelease and event.button() == Qt.LeftButton and self.stroking is obj:
            self.stroking = None
            self.panel.stroke_ended()
            return True
        return False


def plane_of(view) -> tuple:
    """(normal LPS axis, half slice thickness mm) of a slice view: the brush paints one slice."""
    ax = NORMAL_AXIS[view.view]
    return ax, 0.5 * float(view.display.grid.spacing[ax])


class LesionRows(QTableWidget):
    """Lesions grown from a click: name (double-click to rename), diameter, volume, mean HU,
    contrast to the liver around, kind. ``renamed(old, new)`` is called on an edited name."""

    def __init__(self, on_rename: Callable[[str, str], None], on_select: Callable[[str], None]):
        super().__init__(0, len(LESION_COLUMNS))
        self.setObjectName("segmented_lesions")
        self.setHorizontalHeaderLabels(LESION_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.names = []
        self._on_rename, self._on_select = on_rename, on_select
        self._filling = False
        self.itemChanged.connect(self._item_changed)
        self.itemSelectionChanged.connect(self._selected)

    def fill(self, rows: dict, names) -> None:
        """``rows``: name -> lesion summary (``LesionSegmentation.summary()``); ``names``: the label
        map's lesion names in order (a lesion from a file has no measures: shown with dashes)."""
        self._filling = True
        self.names = list(names)
        self.setRowCount(len(self.names))
        for r, name in enumerate(self.names):
            row = rows.get(name) or {}
            cells = [name, _fmt(row.get("diameter_mm"), ".1f"), _fmt(row.get("volume_ml"), ".2f"),
                     _fmt(row.get("mean_hu"), ".0f"), _fmt(row.get("contrast_hu"), "+.0f"), row.get("kind", "-")]
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                if c:
                    it.setFlags(it.flags() & ~Qt.ItemIsEditable)
                if row.get("warnings"):
                    it.setToolTip("\n".join(row["warnings"]))
                self.setItem(r, c, it)
        self._filling = False

    def _item_changed(self, item) -> None:
        if self._filling or item.column() != 0 or item.row() >= len(self.names):
            return
        old, new = self.names[item.row()], item.text()
        if new != old:
            self._on_rename(old, new)

    def _selected(self) -> None:
        rows = {i.row() for i in self.selectedIndexes()}
        if rows and min(rows) < len(self.names):
            self._on_select(self.names[min(rows)])


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(float(v), spec)
