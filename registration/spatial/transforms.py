"""4x4 homogeneous transforms: naming, composition, rigid parameters, files.

Convention: a matrix named ``a_to_b`` maps points in frame ``a`` to frame
``b``: ``p_b = a_to_b @ p_a`` (column vectors). Compose so inner names
cancel: ``image_to_ct = reference_to_ct @ probe_to_reference @ image_to_probe``.

Rigid parameters are ``(rx, ry, rz, tx, ty, tz)``: rotation vector
components in degrees (axis * angle) and translation in mm.

ITK ``.tfm`` files store the *resampling* transform, which maps points of the
fixed image into the moving image. For a ``reference_to_ct`` written so that
Slicer or ITK resamples the CT onto the Reference frame, the file holds
``reference_to_ct`` itself (fixed = Reference, moving = CT). All our files
are LPS, like ITK. The conversion happens only in :func:`write_tfm` /
:func:`read_tfm`.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from .atomic_io import atomic_write_text
from .errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
RAS_TO_LPS = LPS_TO_RAS  # its own inverse
_AFFINE_ROW_TOL = 1e-6    # last row of an affine 4x4 must be 0 0 0 1 within this
_ORTHONORMAL_TOL = 1e-9   # R^T R = I within this: invert by transposing (exact for rigid)
RIGID_TOL = 1e-4          # default tolerance of is_rigid on R^T R = I


def as_matrix(m, name: str = "matrix", path=None) -> np.ndarray:
    """Validate and return a 4x4 float matrix (affine: last row 0 0 0 1)."""
    try:
        a = np.asarray(m, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} is not numeric: {m!r}", path=path,
                         fix="give 16 numbers (4x4, row-major)") from None
    if a.size == 16:
        a = a.reshape(4, 4)
    elif a.size == 12:
        a = np.vstack([a.reshape(3, 4), [0, 0, 0, 1]])
    else:
        raise InputError(f"{name} has {a.size} numbers, not 16", path=path,
                         fix="give a 4x4 matrix as 16 numbers, row-major")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or infinite values", path=path,
                         fix="re-export the transform")
    if not np.allclose(a[3], [0, 0, 0, 1], atol=_AFFINE_ROW_TOL):
        raise InputError(f"{name} is not affine (last row {a[3].tolist()})", path=path,
                         fix="the last row of a 4x4 transform must be 0 0 0 1")
    return a


def compose(*matrices: np.ndarray) -> np.ndarray:
    """compose(b_to_c, a_to_b) == b_to_c @ a_to_b (left-most applied last)."""
    out = np.eye(4)
    for m in matrices:
        out = out @ np.asarray(m, dtype=float)
    return out


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of an affine 4x4 (exact for rigid, general otherwise)."""
    m = np.asarray(m, dtype=float)
    r = m[:3, :3]
    out = np.eye(4)
    if np.allclose(r.T @ r, np.eye(3), atol=_ORTHONORMAL_TOL):
        out[:3, :3] = r.T
    else:
        out[:3, :3] = np.linalg.inv(r)
    out[:3, 3] = -out[:3, :3] @ m[:3, 3]
    return out


def apply(m: np.ndarray, points) -> np.ndarray:
    """Map (..., 3) points through a 4x4 matrix."""
    p = np.asarray(points, dtype=float)
    return p @ np.asarray(m)[:3, :3].T + np.asarray(m)[:3, 3]


def rigid_matrix(params: Sequence[float], center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(rx, ry, rz [deg, rotation vector], tx, ty, tz [mm]) -> 4x4.

    The rotation is about ``center`` (mm): p' = R (p - c) + c + t.
    """
    from scipy.spatial.transform import Rotation   # here: importing scipy.spatial costs ~0.1 s at start-up
    p = np.asarray(params, dtype=float).reshape(6)
    r = Rotation.from_rotvec(np.deg2rad(p[:3])).as_matrix()
    c = np.asarray(center, dtype=float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + p[3:]
    return m


def rigid_params(m: np.ndarray, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Inverse of :func:`rigid_matrix` for a rigid 4x4."""
    from scipy.spatial.transform import Rotation
    m = np.asarray(m, dtype=float)
    rv = np.rad2deg(Rotation.from_matrix(orthonormalize(m[:3, :3])).as_rotvec())
    c = np.asarray(center, dtype=float)
    t = m[:3, 3] - c + m[:3, :3] @ c
    return np.concatenate([rv, t])


def orthonormalize(r: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (SVD), det +1."""
    u, _, vt = np.linalg.svd(np.asarray(r, dtype=float))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def is_rigid(m: np.ndarray, tol: float = RIGID_TOL) -> bool:
    """True when the 3x3 part of ``m`` is a rotation (orthonormal, det > 0) within ``tol``."""
    r = np.asarray(m, dtype=float)[:3, :3]
    return bool(np.allclose(r.T @ r, np.eye(3), atol=tol) and np.linalg.det(r) > 0)


def rotation_angle_deg(m: np.ndarray) -> float:
    """Angle of the rotation part of a rigid 4x4, in degrees."""
    r = orthonormalize(np.asarray(m, dtype=float)[:3, :3])
    c = (np.trace(r) - 1.0) / 2.0
    return float(np.degrees(math.acos(max(-1.0, min(1.0, c)))))


def difference(a_to_b: np.ndarray, a_to_b_other: np.ndarray):
    """(translation mm, rotation deg) of ``a_to_b_other`` relative to ``a_to_b``."""
    d = invert(a_to_b) @ a_to_b_other
    return float(np.linalg.norm(d[:3, 3])), rotation_angle_deg(d)


def lps_to_ras(m_lps: np.ndarray) -> np.ndarray:
    """A transform acting on LPS points -> the same transform on RAS points."""
    return LPS_TO_RAS @ np.asarray(m_lps, dtype=float) @ LPS_TO_RAS


def ras_to_lps(m_ras: np.ndarray) -> np.ndarray:
    """A transform acting on RAS points -> the same transform on LPS points."""
    return LPS_TO_RAS @ np.asarray(m_ras, dtype=float) @ LPS_TO_RAS


def parse_matrix_text(text: str, name: str = "matrix", path=None) -> np.ndarray:
    """'1 0 0 0  0 1 0 0 ...' (16 numbers, row-major) -> 4x4."""
    parts = str(text).replace(",", " ").split()
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise InputError(f"{name} is not numeric: '{text.strip()[:80]}'", path=path,
                         fix="write 16 numbers separated by spaces, row-major") from None
    if len(values) != 16:
        raise InputError(f"{name} has {len(values)} numbers, not 16", path=path,
                         fix="write a 4x4 matrix as 16 numbers, row-major")
    return as_matrix(values, name=name, path=path)


def format_matrix(m: np.ndarray) -> str:
    """16 numbers, row-major, shortest exact text (the PLUS header style)."""
    return " ".join(f"{float(v):.17g}" for v in np.asarray(m, dtype=float).reshape(-1))


# ---------------------------------------------------------------------------
# ITK transform files
# ---------------------------------------------------------------------------
TFM_HEADER = "#Insight Transform File V1.0"


def write_tfm(path, fixed_to_moving: np.ndarray, *, center=(0.0, 0.0, 0.0)) -> None:
    """Write an LPS affine as ITK's ``AffineTransform_double_3_3`` (atomic).

    ``fixed_to_moving`` is the resampling transform: it maps points of the
    fixed image into the moving image. For our registration result
    ``reference_to_ct`` pass it unchanged (fixed = Reference, moving = CT).
    ITK's affine: p' = A (p - c) + c + t with Parameters = A (row-major), t
    and FixedParameters = c.
    """
    m = as_matrix(fixed_to_moving, name="transform")
    c = np.asarray(center, dtype=float)
    a = m[:3, :3]
    # m[:3,3] = c - A c + t  ->  t = m[:3,3] - c + A c
    t = m[:3, 3] - c + a @ c
    params = list(a.reshape(-1)) + list(t)
    text = "\n".join([
        TFM_HEADER,
        "#Transform 0",
        "Transform: AffineTransform_double_3_3",
        "Parameters: " + " ".join(repr(float(v)) for v in params),
        "FixedParameters: " + " ".join(repr(float(v)) for v in c),
        "",
    ])
    atomic_write_text(path, text)


def read_tfm(path) -> np.ndarray:
    """Read a 3D affine/rigid/Euler ITK transform file -> fixed_to_moving (LPS 4x4).

    Uses SimpleITK so every transform type ITK writes is understood.
    """
    import SimpleITK as sitk
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError("file not found", path=path, fix="check the path")
    try:
        tx = sitk.ReadTransform(path)
    except (RuntimeError, UnicodeDecodeError) as exc:
        # ITK quotes the bad line in its message; SWIG fails to decode it when it is not UTF-8
        detail = str(exc).splitlines()[-1][:120] if isinstance(exc, RuntimeError) else "not text"
        raise InputError(f"not a readable ITK transform file ({detail})",
                         path=path, fix="export the transform as .tfm or .h5 from Slicer/ITK") from None
    return sitk_transform_to_matrix(tx, path=path)


def sitk_transform_to_matrix(tx, path=None) -> np.ndarray:
    """A linear SimpleITK transform (possibly composite) -> 4x4 LPS fixed_to_moving."""
    import SimpleITK as sitk
    if tx.GetDimension() != 3:
        raise InputError(f"transform is {tx.GetDimension()}D, not 3D", path=path,
                         fix="use a 3D transform")
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        m = np.eye(4)
        # ITK applies the last-added transform first.
        for n in range(comp.GetNumberOfTransforms()):
            m = m @ sitk_transform_to_matrix(comp.GetNthTransform(n), path)
        return m
    tx = tx.Downcast() if hasattr(tx, "Downcast") else tx
    if not all(hasattr(tx, f) for f in ("GetMatrix", "GetCenter", "GetTranslation")):
        raise InputError(f"transform type {tx.GetName()} is not linear", path=path,
                         fix="export a rigid or affine transform")
    a = np.array(tx.GetMatrix(), dtype=float).reshape(3, 3)
    c = np.array(tx.GetCenter(), dtype=float)
    t = np.array(tx.GetTranslation(), dtype=float)
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = t + c - a @ c
    return as_matrix(m, name="transform", path=path)
