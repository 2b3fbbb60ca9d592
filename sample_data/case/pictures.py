"""Pictures of the demo patient for a person to look at (matplotlib, Agg).

Axial and coronal CT slices of both phases through each lesion, with the
label outlines. Images are drawn in radiological convention: patient right
(negative x) on the image left, anterior at the top of axial slices.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OUTLINE = ["liver", "portal_vein", "hepatic_vein", "artery", "ivc", "bone", "lung",
           "gallbladder", "kidney", "spleen", "pancreas", "pancreatic_mass", "bowel"]


def save_lesion_pictures(ct_arterial, ct_portal, labels, truth, out_dir) -> list:
    """One PNG per lesion: axial and coronal slices, both phases, outlines; returns paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sp, org = ct_portal.spacing, ct_portal.origin
    nk, nj, ni = ct_portal.array.shape
    ext_ax = [org[0] - sp[0] / 2, org[0] + (ni - 0.5) * sp[0], org[1] + (nj - 0.5) * sp[1], org[1] - sp[1] / 2]
    ext_co = [org[0] - sp[0] / 2, org[0] + (ni - 0.5) * sp[0], org[2] - sp[2] / 2, org[2] + (nk - 0.5) * sp[2]]
    cmap = plt.get_cmap("tab20")
    paths = []
    for les in truth["lesions"]:
        i, j, k = np.rint(ct_portal.lps_to_index(les["centroid_lps"])).astype(int)
        fig, axes = plt.subplots(2, 2, figsize=(14, 12))
        for col, (vol, phase) in enumerate(((ct_arterial, "arterial"), (ct_portal, "portal"))):
            for row, (img, lab, ext, orig, cut) in enumerate((
                    (vol.array[k], labels.array[k], ext_ax, "upper", f"axial z={les['centroid_lps'][2]:.0f}"),
                    (vol.array[:, j, :], labels.array[:, j, :], ext_co, "lower",
                     f"coronal y={les['centroid_lps'][1]:.0f}"))):
                ax = axes[row, col]
                ax.imshow(img, cmap="gray", vmin=-160, vmax=240, extent=ext, origin=orig,
                          interpolation="nearest")
                for n, name in enumerate(OUTLINE + [les["name"]]):
                    if name not in labels.names:
                        continue
                    m = (lab == labels.names[name]).astype(float)
                    if m.any():
                        color = "yellow" if name == les["name"] else cmap(n % 20)
                        ax.contour(m, levels=[0.5], colors=[color], linewidths=0.6, extent=ext,
                                   origin=orig)
                ax.plot(les["centroid_lps"][0], les["centroid_lps"][1 if row == 0 else 2], "r+", ms=14)
                ax.set_title(f"{phase} - {cut} - {les['name']} {les['type']} "
                             f"{les['diameter_mm']:.0f} mm {','.join(les['notes'])}")
                ax.set_xlabel("x (mm)  <- patient right | patient left ->")
        fig.tight_layout()
        p = out_dir / f"phantom_{les['name']}.png"
        fig.savefig(p, dpi=60)
        plt.close(fig)
        paths.append(p)
    return paths


def save_overview_picture(ct_arterial, ct_portal, labels, path, z_levels=(60, 25, -10, -35, -58, -85)):
    """Axial slices (portal phase, label outlines) at several heights, plus
    coronal and sagittal slices of both phases: a whole-patient check."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sp, org = ct_portal.spacing, ct_portal.origin
    nk, nj, ni = ct_portal.array.shape
    ext_ax = [org[0] - sp[0] / 2, org[0] + (ni - 0.5) * sp[0], org[1] + (nj - 0.5) * sp[1], org[1] - sp[1] / 2]
    ext_co = [org[0] - sp[0] / 2, org[0] + (ni - 0.5) * sp[0], org[2] - sp[2] / 2, org[2] + (nk - 0.5) * sp[2]]
    ext_sa = [org[1] - sp[1] / 2, org[1] + (nj - 0.5) * sp[1], org[2] - sp[2] / 2, org[2] + (nk - 0.5) * sp[2]]
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(3, 4, figsize=(24, 17))
    panels = []
    for z in z_levels:
        k = int(np.clip(round((z - org[2]) / sp[2]), 0, nk - 1))
        panels.append((ct_portal.array[k], labels.array[k], ext_ax, "upper", f"portal axial z={z}"))
    j = int(round((20.0 - org[1]) / sp[1]))
    i = int(round((-70.0 - org[0]) / sp[0]))
    for vol, phase in ((ct_arterial, "arterial"), (ct_portal, "portal")):
        panels.append((vol.array[:, j, :], labels.array[:, j, :], ext_co, "lower", f"{phase} coronal y=20"))
        panels.append((vol.array[:, :, i], labels.array[:, :, i], ext_sa, "lower",
                       f"{phase} sagittal x=-70 (anterior left)"))
    for ax, (img, lab, ext, orig, title) in zip(axes.reshape(-1), panels):
        ax.imshow(img, cmap="gray", vmin=-160, vmax=240, extent=ext, origin=orig, interpolation="nearest")
        for n, name in enumerate(OUTLINE):
            if name in labels.names and (lab == labels.names[name]).any():
                ax.contour((lab == labels.names[name]).astype(float), levels=[0.5], colors=[cmap(n % 20)],
                           linewidths=0.5, extent=ext, origin=orig)
        ax.set_title(title)
    for ax in axes.reshape(-1)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=50)
    plt.close(fig)
    return path
