"""What the MR dock changes in the window's other views (issue 18, item 5): the MR on the
ultrasound instead of the CT, the MR beside the ultrasound in the fused view, and MR
landmarks for the Registration panel's pairs. A mixin of :class:`.mr_panel.MRPanel`
(it uses the panel's ``window``, ``mr``, ``mr_to_ct``, ``overlay_box``, ``fused_choice``
and ``_act``)."""
from __future__ import annotations

import numpy as np

from gui.views.mr_view import mr_on_ct_grid
from registration.spatial.errors import InputError
from registration.spatial.transforms import apply


class MRLinks:
    """The MR in the US view, the fused view and the landmark pairs."""

    def set_mr_on_us(self, on: bool) -> None:
        """Overlay the MR (on the CT grid through mr_to_ct) on the US instead of the CT."""
        w = self.window
        if not on:
            if w.ct is not None:
                w.us_view.set_ct(w.ct, w.labels)
            return
        if self.mr is None or self.mr_to_ct is None or w.ct is None:
            self.overlay_box.blockSignals(True)
            self.overlay_box.setChecked(False)
            self.overlay_box.blockSignals(False)
            raise InputError("the MR overlay needs the CT, the MR and MR->CT", fix="open them first")
        vol = mr_on_ct_grid(self.mr, w.ct, self.mr_to_ct, w.us_view.ct_window, w.us_view.ct_level)
        w.us_view.set_ct(vol, w.labels)

    def show_beside_us(self, name: str) -> None:
        """The fused view beside the US shows the CT or the MR (resampled on the CT grid, a worker)."""
        w = self.window
        if name == "CT":
            w.fused_view.show_image("CT")
            return
        if self.mr is None or self.mr_to_ct is None or w.ct is None:
            self.fused_choice.blockSignals(True)
            self.fused_choice.setCurrentIndex(0)
            self.fused_choice.blockSignals(False)
            raise InputError("the MR beside the US needs the CT, the MR and MR->CT", fix="open them first")
        w.run_worker("MR beside the US", mr_on_ct_grid, self._mr_beside_ready, self.mr, w.ct, self.mr_to_ct,
                     1.0, 0.5, pass_progress=False)

    def _mr_beside_ready(self, vol) -> None:
        fv = self.window.fused_view
        fv.set_second_image(vol, "MR")
        fv.show_image("MR" if self.fused_choice.currentIndex() == 1 else "CT")

    def _mr_clicked(self, _view: str, lps_mr) -> None:
        """A click on the MR view while the Registration panel picks landmarks: the landmark's CT
        point is the MR point carried through ``mr_to_ct`` (so an MR-only structure can be a
        landmark); its US point is then clicked on the ultrasound as usual."""
        dock = self.window.panel_docks.get("registration")
        reg = dock.widget() if dock is not None else None
        if reg is None or not reg.pick_button.isChecked():
            return
        if self.mr_to_ct is None:
            self._act("MR landmark", self._need_mr_to_ct)
            return
        reg.on_ct_click("MR", apply(self.mr_to_ct, np.asarray(lps_mr, float)))

    @staticmethod
    def _need_mr_to_ct() -> None:
        raise InputError("an MR landmark needs MR->CT (its pair is fitted on the CT frame)",
                         fix="open the ctus align result (Open MR->CT) first")

