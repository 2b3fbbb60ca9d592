"""What is loaded: CT, labels, sweep, registration, as plain text facts.

File names, not paths, are shown (the full paths are in the tooltip): a long path has no
place to wrap and would widen the dock; every line wraps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PyQt5.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget


class DataPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("data_panel")
        self.text = QLabel()
        self.text.setObjectName("data_text")
        self.text.setWordWrap(True)
        self.text.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addStretch(1)
        self.update_facts(None, None, None, None)

    def update_facts(self, ct, labels, sweep, registration) -> None:
        lines, paths = [], []
        if ct is None:
            lines.append("<b>CT</b>: none (File &gt; Open CT)")
        else:
            i, j, k = ct.shape_ijk
            sp = ", ".join(f"{s:.2f}" for s in ct.spacing)
            source = str(ct.metadata.get("source") or "")
            lines.append(f"<b>CT</b>: {i}x{j}x{k}, {sp} mm, {ct.orientation_letters()}"
                         + (f"<br><small>{Path(source).name}</small>" if source else ""))
            paths.append(f"CT: {source}")
        if labels is None:
            lines.append("<b>Labels</b>: none")
        else:
            names = ", ".join(sorted(labels.names)) or "no names (values only)"
            lines.append(f"<b>Labels</b>: {names}")
        if sweep is None:
            lines.append("<b>Sweep</b>: none (File &gt; Open sweep)")
        else:
            s = sweep.summary()
            sp = s["pixel_spacing_mm"]
            sp_text = "unknown" if sp is None else f"{sp[0]:.3f} mm/px"
            paths.append(f"sweep: {sweep.source}")
            lines.append(f"<b>Sweep</b>: {Path(str(sweep.source)).name}, {s['frames']} frames "
                         f"{s['image_size'][0]}x{s['image_size'][1]}, {sp_text}, {s['invalid_frames']} INVALID, chain {' → '.join(s['chain'])}")
        lines.append("<b>Registration</b>: none yet" if registration is None
                     else f"<b>Registration</b>: {registration.quality_text()}")  # plain words, one figure
        self.text.setText("<br>".join(lines))
        self.text.setToolTip("\n".join(paths))

    def plain_text(self) -> Optional[str]:
        return self.text.text()
