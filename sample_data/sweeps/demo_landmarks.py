"""Simulated landmark clicks for the demo case (what the radiologist would pick).

The truth holds named vessel landmarks in CT LPS and the true
``reference_to_ct``. A radiologist clicks each landmark on the CT and again on
the ultrasound (which lands in the Reference frame); both clicks are off by
the fiducial localisation error (FLE). We model each click as an isotropic
Gaussian error of ``fle_mm`` RMS (per point, i.e. sigma = fle/sqrt(3) per
axis): 1.5 mm on CT, 3 mm on US by default (US landmarks are harder to pin).

``python -m sample_data.sweeps.demo_landmarks CASE_DIR OUT.json [--seed N]`` writes
the pairs JSON that ``ctus register --landmarks`` reads.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

import numpy as np

from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.transforms import apply, invert


def demo_landmark_pairs(truth: dict, *, fle_ct_mm: float = 1.5, fle_us_mm: float = 3.0,
                        seed: int = 0, names: Optional[list] = None) -> dict:
    """{"pairs": [{"name", "ct", "reference"}], "simulated": {...}} from a demo truth dict."""
    rng = np.random.default_rng(seed)
    reference_to_ct = np.asarray(truth["reference_to_ct"], float)
    landmarks = truth["landmarks"]
    chosen = names or sorted(landmarks)
    pairs = []
    for name in chosen:
        ct = np.asarray(landmarks[name], float)
        ref = apply(invert(reference_to_ct), ct)
        ct_click = ct + rng.normal(0, fle_ct_mm / np.sqrt(3), 3)
        ref_click = ref + rng.normal(0, fle_us_mm / np.sqrt(3), 3)
        pairs.append({"name": name, "ct": [round(float(v), 3) for v in ct_click],
                      "reference": [round(float(v), 3) for v in ref_click]})
    return {"pairs": pairs,
            "simulated": {"fle_ct_mm": fle_ct_mm, "fle_us_mm": fle_us_mm, "seed": seed,
                          "note": "simulated clicks on the demo case's vessel landmarks"}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sample_data.sweeps.demo_landmarks", description=__doc__.splitlines()[0])
    ap.add_argument("case", help="demo case folder (with truth.json)")
    ap.add_argument("out", help="pairs JSON to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    truth_path = os.path.join(args.case, "truth.json")
    try:
        with open(truth_path) as f:
            truth = json.load(f)
        atomic_write_text(args.out, json.dumps(demo_landmark_pairs(truth, seed=args.seed), indent=2) + "\n")
    except (OSError, ValueError, KeyError) as exc:
        print(f"{truth_path}: cannot make demo landmarks ({exc}); run 'ctus sample' first", file=sys.stderr)
        return 2
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
