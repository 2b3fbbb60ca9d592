"""What is loaded: CT, labels, sweep, registration, as plain text facts."""
from __future__ import annotations

from typing import Optional

from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget


class DataPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("data_panel")
        self.text = QLabel()
        self.text.setObjectName("data_text")
        self.text.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addStretch(1)
        self.update_facts(None, None, None, None)

    def update_facts(self, ct, labels, sweep, registration) -> None:
        lines = []
        if ct is None:
            lines.append("<b>CT</b>: none (File &gt; Open CT)")
        else:
            i, j, k = ct.shape_ijk
            sp = ", ".join(f"{s:.2f}" for s in ct.spacing)
            lines.append(f"<b>CT</b>: {i}x{j}x{k}, {sp} mm, {ct.orientation_letters()}"
                         f"<br><small>{ct.metadata.get('source', '')}</small>")
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
            lines.append(f"<b>Sweep</b>: {s['frames']} frames {s['image_size'][0]}x{s['image_size'][1]}, "
                         f"{sp_text}, {s['invalid_frames']} INVALID, chain {' → '.join(s['chain'])}")
        lines.append("<b>Registration</b>: none yet" if registration is None
                     else f"<b>Registration</b>: {registration.quality_text()}")
        self.text.setText("<br>".join(lines))

    def plain_text(self) -> Optional[str]:
        return self.text.text()
