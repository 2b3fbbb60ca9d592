"""``ctus reconstruct --sweep S [--calibration C] [--spacing MM] [--compounding mean|max|latest]
[--no-fill] --out VOL.nrrd [--force]``

Reconstructs a tracked sweep into a volume in its Reference frame (NRRD
"LPS" coordinates = Reference mm; origin = centre of the first voxel), the way
PLUS's VolumeReconstructor does (see registration/ultrasound/reconstruction.py).

If the calibration file (a PLUS device-set config) has a ``<VolumeReconstruction>``
element, its OutputSpacing, OutputOrigin + OutputExtent, ClipRectangle*, Fan*,
CompoundingMode, SkipInterval, FillHoles and HoleFilling elements are used unless a flag
overrides them (``--spacing`` drops the config's origin/extent, which are in
voxels of the config's spacing). With clip/fan settings from the config the
detected fan mask of the sweep is not used, so the pixels are PLUS's, and MEAN
uses PLUS's truncating running mean (otherwise the exact mean, rounded).
"""
from __future__ import annotations

import os
import sys
import time

from registration.spatial.errors import InputError, check_choice

_COMPOUNDING = {"MEAN": "mean", "MAXIMUM": "max", "LATEST": "latest"}
_SUFFIXES = (".nrrd", ".mha", ".nii", ".nii.gz")  # single files: written atomically


def add_parser(sub):
    p = sub.add_parser("reconstruct", help="reconstruct a tracked sweep into a 3D volume (PLUS conventions)",
                       description=__doc__)
    p.add_argument("--sweep", required=True, metavar="S", help="sequence file (.mha/.igs.mha/.mhd/.seq.nrrd)")
    p.add_argument("--calibration", metavar="C",
                   help="PLUS device-set config XML (ImageToProbe, optional <VolumeReconstruction>)")
    p.add_argument("--spacing", type=float, metavar="MM", help="output voxel size in mm (default: config or 0.5)")
    p.add_argument("--compounding", choices=("mean", "max", "latest"),
                   help="how overlapping pixels combine (default: config or mean)")
    p.add_argument("--no-fill", action="store_true", help="skip hole filling")
    p.add_argument("--out", required=True, metavar="VOL.nrrd", help="output volume (.nrrd, .mha, .nii.gz)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def settings_from_config(recon: dict, args, notes: list) -> dict:
    """reconstruct() keyword arguments from PLUS <VolumeReconstruction> attributes + flags."""
    from registration.ultrasound.clip_masks import DEFAULT_FAN_RADIUS_STOP_PX
    from registration.ultrasound.hole_filling_elements import DEFAULT_ELEMENTS, elements_from_plus
    from registration.ultrasound.reconstruction import DEFAULT_SPACING_MM
    kw: dict = {}
    spacing = recon.get("OutputSpacing")
    if args.spacing is not None:
        kw["spacing_mm"] = args.spacing
        if recon.get("OutputOrigin") is not None:
            notes.append("--spacing given: the config's OutputOrigin/OutputExtent are not used")
    else:
        kw["spacing_mm"] = spacing if spacing else DEFAULT_SPACING_MM
        if recon.get("OutputOrigin") is not None and recon.get("OutputExtent") is not None:
            kw["output_origin"] = recon["OutputOrigin"]
            kw["output_extent"] = recon["OutputExtent"]
    mode = args.compounding
    if mode is None:
        plus_mode = recon.get("CompoundingMode")
        if plus_mode is None and recon.get("Calculation") == "MAXIMUM":
            plus_mode = "MAXIMUM"
        elif plus_mode is None and recon.get("Compounding") is False:
            plus_mode = "LATEST"
        mode = "mean" if plus_mode is None else check_choice(
            plus_mode, _COMPOUNDING, "CompoundingMode", path=args.calibration,
            fix="use MEAN, MAXIMUM or LATEST, or pass --compounding")
    kw["compounding"] = mode
    if recon and mode == "mean":
        # Settings come from PLUS: reproduce PLUS's truncating running mean too, so the
        # output can be compared with PLUS's own volume voxel by voxel.
        kw["plus_running_mean"] = True
    if recon.get("Interpolation") == "LINEAR":
        notes.append("Interpolation=LINEAR in the config: nearest-neighbour insertion is used")
    origin, size = recon.get("ClipRectangleOrigin"), recon.get("ClipRectangleSize")
    if size and len(size) == 2 and size[0] > 0 and size[1] > 0:
        kw["clip_rectangle"] = list(origin or [0, 0]) + list(size)
    fan = {}
    angles = recon.get("FanAnglesDeg") or recon.get("FanAngles")
    if angles and any(a != 0 for a in angles):
        fan["FanAnglesDeg"] = angles
        fan["FanOriginPixel"] = recon.get("FanOriginPixel") or recon.get("FanOrigin") or [0, 0]
        fan["FanRadiusStartPixel"] = recon.get("FanRadiusStartPixel", 0.0)
        fan["FanRadiusStopPixel"] = (recon.get("FanRadiusStopPixel") or recon.get("FanDepth")
                                     or DEFAULT_FAN_RADIUS_STOP_PX)
        kw["fan_geometry"] = fan
    if "clip_rectangle" in kw or fan:
        kw["use_sweep_fan_mask"] = False
    if recon.get("SkipInterval"):
        kw["skip_interval"] = int(recon["SkipInterval"])
    if recon.get("EnableFanAnglesAutoDetect"):
        notes.append("EnableFanAnglesAutoDetect is not implemented: the configured fan angles are used")
    fill = recon.get("FillHoles", True) and not args.no_fill
    kw["fill_holes"] = bool(fill)
    if fill and recon.get("HoleFilling"):
        elements, more = elements_from_plus(recon["HoleFilling"])
        notes.extend(more)
        kw["hole_elements"] = elements or DEFAULT_ELEMENTS
    return kw


def write_volume_atomic(volume, path: str, metadata: dict) -> None:
    """Write with SimpleITK to a temporary file in the same folder, then os.replace (atomic)."""
    from registration.spatial.atomic_io import atomic_write_image
    image = volume.to_sitk()
    for key, value in metadata.items():
        image.SetMetaData(key, str(value))
    atomic_write_image(image, path)


def run(args) -> int:
    from registration.io.plus_config import read_plus_config
    from registration.io.sequence_io import load_sweep
    from registration.ultrasound.reconstruction import reconstruct

    out = args.out
    if not out.lower().endswith(_SUFFIXES):
        raise InputError("unsupported output type", path=out, fix="name the output .nrrd (or .mha, .nii.gz)")
    if os.path.exists(out) and not args.force:
        raise InputError("output exists", path=out, fix="pass --force to overwrite it or choose another --out")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise InputError("output folder does not exist", path=out, fix="create the folder first")
    t0 = time.perf_counter()
    recon, notes = {}, []
    if args.calibration:
        config = read_plus_config(args.calibration)
        recon = config["reconstruction"]
    sweep = load_sweep(args.sweep, calibration=args.calibration)
    kw = settings_from_config(recon, args, notes)
    result = reconstruct(sweep, **kw)
    result.notes.extend(notes)
    vol = result.volume
    metadata = {"ctus_frame": sweep.reference_frame, "ctus_source": os.path.basename(args.sweep),
                "ctus_compounding": result.compounding,
                "ctus_output_extent": " ".join(str(v) for v in result.output_extent)}
    write_volume_atomic(vol, out, metadata)
    elapsed = time.perf_counter() - t0
    s = result.summary()
    print(f"reconstructed {args.sweep} -> {out}")
    print(f"  frames used {s['frames_used']} of {s['frames_total']} ({s['frames_invalid']} invalid, excluded)")
    print(f"  size {' x '.join(str(v) for v in s['size_ijk'])} voxels, spacing "
          f"{' '.join(f'{v:g}' for v in s['spacing_mm'])} mm, origin (centre of first voxel, "
          f"{sweep.reference_frame} mm) {' '.join(f'{v:.3f}' for v in s['origin_mm'])}")
    print(f"  compounding {s['compounding']}{' (PLUS running mean)' if kw.get('plus_running_mean') else ''}, hole filling {'on' if kw['fill_holes'] else 'off'}, "
          f"{'clip/fan from config' if not kw.get('use_sweep_fan_mask', True) else 'fan mask of the sweep'}")
    print(f"  voxels with data {100 * s['filled_fraction']:.1f} % (inserted {100 * s['hit_fraction']:.1f} %)")
    print(f"  time {elapsed:.2f} s (insertion {s['timings_s']['insert_s']:.2f} s, "
          f"hole filling {s['timings_s']['fill_s']:.2f} s)")
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
