"""The report's pictures: CT planes resliced around a needle path, and the registered US frame.

CT planes are resliced from the LPS volume (trilinear for the CT, nearest for
the contours) on a square grid in mm; images are shown in radiological
convention (patient's right on the image left, anterior up for axial). The
functions draw on matplotlib Axes they are given and import no matplotlib.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

_W, _L = 400.0, 40.0   # soft-tissue window (HU)
_COLORS = {"liver": "#d9a441", "bone": "#ffffff", "vessel": "#e8463c", "lung": "#66c2ff",
           "gallbladder": "#57d957", "bowel": "#b57edc", "kidney": "#ff9f40", "spleen": "#9d6ca2",
           "pancreas": "#f9b46f", "heart": "#ce6e54"}


def _plane_kji(ct, centre, u, v, half_mm=70.0, px_mm=0.5):
    """(3, n, n) continuous [k, j, i] indices of a square plane centred at ``centre``.

    The plane spans ``2 * half_mm``; unit ``u`` points right and ``v`` down in the image.
    """
    n = int(round(2 * half_mm / px_mm)) + 1
    a = np.linspace(-half_mm, half_mm, n)
    m = ct.lps_to_ijk
    c_ijk = m[:3, :3] @ centre + m[:3, 3]
    du, dv = m[:3, :3] @ u, m[:3, :3] @ v      # index steps per mm along u and v
    ijk = c_ijk[:, None, None] + du[:, None, None] * a[None, None, :] + dv[:, None, None] * a[None, :, None]
    return ijk[::-1]


def _sample(arr, kji, order, cval):
    return ndimage.map_coordinates(arr, kji.reshape(3, -1), order=order, mode="constant",
                                   cval=cval).reshape(kji.shape[1:])


def _nearest_index(shape, kji):
    """(flat index, inside) of the nearest voxel of each plane point (``kji`` (3, n, n), as
    :func:`_plane_kji`), computed once per view and shared by every layer: a gather per layer
    instead of a spline evaluation each (issue 16: the report's mask sampling)."""
    idx = np.floor(kji.reshape(3, -1) + 0.5).astype(np.intp)
    inside = np.all((idx >= 0) & (idx < np.asarray(shape)[:, None]), axis=0)
    flat = np.ravel_multi_index(tuple(np.where(inside, idx, 0)), shape)
    return flat, inside


def _outline(ax, mask2d, half_mm: float, color: str, lw: float) -> None:
    """The 0.5 iso-line of a 0/1 plane (marching squares by contourpy, matplotlib's own contour
    engine) drawn as one line with breaks: the same outline as ``ax.contour`` at a fraction of
    its cost. Sample (row r, column c) lies at (-half + c px, -half + r px) mm."""
    import contourpy
    n = mask2d.shape[0]
    px = 2.0 * half_mm / (n - 1)
    lines = contourpy.contour_generator(z=mask2d.astype(np.float32), line_type="Separate").lines(0.5)
    if not lines:
        return
    xy = np.concatenate([np.vstack([ln, [np.nan, np.nan]]) for ln in lines])
    ax.plot(-half_mm + xy[:, 0] * px, -half_mm + xy[:, 1] * px, color=color, lw=lw)


def layers_of(anatomy, lesion_mask):
    """(uint8 volume, colour, line width) to contour on every view of a page, converted once
    per page (conversion dominates otherwise)."""
    out = []
    for cls, color in _COLORS.items():
        m = anatomy.masks.get("vessel_large" if cls == "vessel" else cls)
        if m is not None and m.any():
            out.append((np.ascontiguousarray(m).view(np.uint8), color, 0.7))
    if lesion_mask is not None:
        out.append((np.ascontiguousarray(lesion_mask).view(np.uint8), "#ff3df5", 1.2))
    return out


#: Path colours: US green, CT orange, an unsafe least-risk path red (also in plan.mrk.json and the GUI).
PATH_COLOURS = {"us": "#00ff66", "ct": "#ffaa00", "unsafe": "#ff2020"}


def path_colour(path: dict) -> str:
    """The colour a trajectory is drawn in: red when it is an unsafe least-risk path."""
    if path.get("safe", True) is False:
        return PATH_COLOURS["unsafe"]
    return PATH_COLOURS["us" if path["guidance"] == "us" else "ct"]


def _to_uv(p, centre, u, v):
    d = np.asarray(p, float) - centre
    return float(d @ u), float(d @ v)


def draw_view(ax, ct, layers, centre, u, v, title, path=None, half_mm=70.0, probe=None,
              labels=("", "", "", "")):
    """The CT plane through ``centre`` (LPS mm) spanned by unit ``u`` (right) and ``v`` (down),
    ``2 * half_mm`` wide, soft-tissue window, with the layers' contours, the path (entry dot,
    target cross), the probe, the edge ``labels`` (left, right, top, bottom) and a 20 mm bar."""
    kji = _plane_kji(ct, centre, u, v, half_mm)
    img = _sample(ct.array, kji, 1, -1000)
    px = 2.0 * half_mm / (img.shape[0] - 1)
    ext = (-half_mm - px / 2, half_mm + px / 2, half_mm + px / 2, -half_mm - px / 2)   # pixel centres at the samples
    ax.imshow(img, cmap="gray", vmin=_L - _W / 2, vmax=_L + _W / 2, extent=ext, interpolation="bilinear")
    flat, inside = _nearest_index(ct.array.shape, kji)
    for arr, color, lw in layers:
        sl = np.where(inside, arr.reshape(-1)[flat], 0).reshape(img.shape)
        if sl.any():
            _outline(ax, sl, half_mm, color, lw)
    if path is not None:
        (x0, y0), (x1, y1) = (_to_uv(path["entry_ct"], centre, u, v), _to_uv(path["target_ct"], centre, u, v))
        colour = path_colour(path)
        unsafe = path.get("safe", True) is False
        ax.plot([x0, x1], [y0, y1], color=colour, lw=1.6, ls="--" if unsafe else "-")
        ax.plot([x1], [y1], marker="+", color="#ff3df5", ms=10, mew=1.5)
        ax.plot([x0], [y0], marker="o", color=colour, ms=4)
        if unsafe:
            ax.text(0.5, 0.93, "UNSAFE", transform=ax.transAxes, color=colour, fontsize=9, weight="bold",
                    ha="center", va="top")
    if probe is not None:
        q = _to_uv(probe["probe_ct"], centre, u, v)
        ax.plot([q[0]], [q[1]], marker="s", color="#33ccff", ms=6)
        ax.annotate("probe", q, color="#33ccff", fontsize=6, xytext=(3, -3), textcoords="offset points")
    ax.set_xlim(-half_mm, half_mm)
    ax.set_ylim(half_mm, -half_mm)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    left, right, top, bottom = labels
    for text, xy, ha, va in ((left, (0.01, 0.5), "left", "center"), (right, (0.99, 0.5), "right", "center"),
                             (top, (0.5, 0.99), "center", "top"), (bottom, (0.5, 0.01), "center", "bottom")):
        if text:
            ax.text(*xy, text, transform=ax.transAxes, color="yellow", fontsize=7, ha=ha, va=va)
    ax.plot([half_mm - 25, half_mm - 5], [half_mm - 5, half_mm - 5], color="white", lw=2)
    ax.text(half_mm - 15, half_mm - 8, "20 mm", color="white", fontsize=5, ha="center")


def draw_path_row(fig, ct, layers, tr: dict, top: float, row_h: float, text_h: float = 0.05) -> None:
    """One trajectory as three CT planes in a row of ``fig`` (figure fractions ``top``, ``row_h``;
    the top ``text_h`` is left for its caption):
    the axial slice at the target, the plane along the needle (the probe's image plane for a US
    path, the gantry plane for a CT path) and the plane across the needle at the target."""
    t = np.asarray(tr["target_ct"], float)
    e = np.asarray(tr["entry_ct"], float)
    d = (t - e) / np.linalg.norm(t - e)          # entry -> target (down the image)
    ctd = tr.get("ct") or {}
    if tr["guidance"] == "us" and tr.get("probe"):
        normal = np.asarray(tr["probe"]["plane_normal_ct"], float)
        along_u = np.cross(d, normal)
        along_title = "US image plane (probe in-plane)"
    elif ctd.get("double_oblique"):
        along_u = np.array([1.0, 0.0, 0.0])     # L-R across the image, the needle down it
        along_title = (f"plane along the needle (double oblique: {abs(ctd['craniocaudal_angle_deg']):.0f} deg "
                       f"craniocaudal, {abs(ctd['in_plane_angle_deg']):.0f} deg in plane)")
    else:
        along_u = np.array([1.0, 0.0, 0.0])     # gantry plane: L-R across the image
        tau = np.radians(ctd.get("gantry_tilt_deg", 0.0))
        d = np.array([0.0, np.cos(tau), np.sin(tau)])   # posterior in the tilted plane
        along_title = f"CT gantry plane (tilt {ctd.get('gantry_tilt_deg', 0.0):+.1f} deg)"
    along_u = along_u - d * (along_u @ d)
    if np.linalg.norm(along_u) < 1e-3:          # needle along L-R: anterior across the image instead
        along_u = np.array([0.0, -1.0, 0.0]) - d * (-d[1])
    along_u /= np.linalg.norm(along_u)
    mid = 0.5 * (t + e)
    half = max(60.0, 0.5 * np.linalg.norm(t - e) + 25.0)
    h = max(0.05, row_h - 0.015 - text_h)
    axes = [fig.add_axes([0.05 + k * 0.31, top - row_h + 0.015, 0.29, h]) for k in range(3)]
    ax_c = np.array([mid[0], mid[1], t[2]])   # axial plane through the target, path centred
    draw_view(axes[0], ct, layers, ax_c, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
              f"axial at target, z = {t[2]:.1f} mm", tr, half_mm=half, probe=tr.get("probe"),
              labels=("R", "L", "A", "P"))
    draw_view(axes[1], ct, layers, mid, along_u, d, along_title, tr, half_mm=half, probe=tr.get("probe"))
    dd = (e - t) / np.linalg.norm(e - t)
    cu = np.cross(dd, [0, 0, 1.0]) if abs(dd[2]) < 0.9 else np.cross(dd, [1.0, 0, 0])
    cu /= np.linalg.norm(cu)
    draw_view(axes[2], ct, layers, t, cu, np.cross(dd, cu), "across the needle at the target", None,
              half_mm=40.0)


def draw_us_overlay(ax, sweep, reference_to_ct, ct, lesion_mask, frame, path):
    """The registered US frame that cuts the lesion most, with the lesion outline from the CT
    labels and the needle path when it lies within 5 mm of the image plane."""
    img = sweep.frames[frame]
    image_to_ct = np.asarray(reference_to_ct, float) @ sweep.image_to_reference(frame)
    rows, cols = img.shape
    jj, ii = np.mgrid[0:rows:2, 0:cols:2]
    pix = np.stack([ii.ravel(), jj.ravel(), np.zeros(ii.size), np.ones(ii.size)])
    ijk = (ct.lps_to_ijk @ image_to_ct @ pix)[:3]
    kji = np.rint(ijk[::-1]).astype(int)
    ok = np.all((kji >= 0) & (kji < np.array(ct.array.shape)[:, None]), axis=0)
    inside = np.zeros(ii.size, bool)
    inside[ok] = lesion_mask[kji[0, ok], kji[1, ok], kji[2, ok]]
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    if inside.any():
        ax.contour(ii, jj, inside.reshape(ii.shape).astype(float), levels=[0.5], colors=["#ff3df5"],
                   linewidths=1.0)
    if path is not None:
        ct_to_image = np.linalg.inv(image_to_ct)
        z_mm = float(np.linalg.norm(image_to_ct[:3, 2]))
        pts = [ct_to_image @ np.append(np.asarray(path[k], float), 1.0) for k in ("entry_ct", "target_ct")]
        if all(abs(p[2]) * z_mm < 5.0 for p in pts):
            ax.plot([pts[0][0], pts[1][0]], [pts[0][1], pts[1][1]], color="#00ff66", lw=1.2)
    ax.set_title(f"registered US frame {frame} (lesion outline from CT)", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
