"""The demo case's liver MR: files (NIfTI and a DICOM MR series) and the ``mr`` part of truth.json.

Frames (LPS mm): the MR scanner's frame (MR), the CT's (CT), the tracker's
patient marker (Reference). The true mapping MR -> CT is not rigid (another
breath-hold; :mod:`sample_data.phantom.mr_motion`), so truth.json gives:

* per point, its MR and CT positions (lesions, vessel landmarks, the MR-only
  lesion): the errors of any MR-CT or MR-US registration are measured there;
* ``mr_to_ct_rigid_liver``: the best rigid MR -> CT over the liver (what a rigid
  registration can reach; its residual per lesion is ``rigid_fit_residual_mm``);
* per sweep, ``reference_to_mr = inv(mr_to_ct_rigid_liver) @ reference_to_ct``: the
  sweeps were simulated from the CT, so Reference -> CT is exact and Reference ->
  MR is that composed with the CT -> MR mapping, whose best rigid form over the liver
  this is (a start perturbed from it is what a benchmark starts from; the TRE is
  measured per point: ``|reference_to_mr @ inv(reference_to_ct) @ p_ct - p_mr|``).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
from pydicom.uid import generate_uid

from registration.spatial.atomic_io import atomic_write_image
from registration.spatial.transforms import invert
from sample_data.phantom.mr import make_mr
from sample_data.sweeps.tracked_sweeps import _right_lobe_target

MR_NIFTI = "mr_hbp.nii.gz"
MR_DICOM = "mr/hbp"
MR_SERIES_DESCRIPTION = "t1_vibe_fs_tra HBP 20min"
MR_AGENT = "Gadoxetate disodium (Primovist) 0.025 mmol/kg IV"
MR_DATE = "20250317"
INJECTION_TM = "093000"
HBP_TM = "095000"      # 20 min after the injection


def _uid(seed: int, *parts) -> str:
    return generate_uid(entropy_srcs=["ctus-demo-mr", str(seed)] + [str(p) for p in parts])


def write_mr(phantom, truth: dict, folder: Path, seed: int) -> dict:
    """Make the demo MR of ``phantom`` (CT, labels), write it into ``folder``; return truth['mr']."""
    from registration.io.mr_write import write_mr_series

    case = make_mr(phantom.ct_portal, phantom.labels, truth, _right_lobe_target(phantom.labels), seed=seed)
    atomic_write_image(case.mr.to_sitk(), folder / MR_NIFTI)
    write_mr_series(case.mr, folder / MR_DICOM, series_description=MR_SERIES_DESCRIPTION,
                    contrast_agent=MR_AGENT, acquisition_time=HBP_TM, contrast_start_time=INJECTION_TM,
                    study_date=MR_DATE, series_uid=_uid(seed, "series", "hbp"), study_uid=_uid(seed, "study"),
                    frame_of_reference_uid=_uid(seed, "frame"), patient_id=f"CTUS-DEMO-{seed}",
                    patient_name="CTUS^Demo", series_number=11, file_names=lambda k: f"MR{k + 1:04d}.dcm",
                    sop_instance_uids=lambda k: _uid(seed, "sop", "hbp", k),
                    extra_tags={"PatientPosition": "HFS", "BodyPartExamined": "ABDOMEN",
                                "Manufacturer": "ctus synthetic phantom"})
    mr_truth = dict(case.truth)
    mr_truth["files"] = {"nifti": MR_NIFTI, "dicom": MR_DICOM}
    rigid = np.asarray(mr_truth["mr_to_ct_rigid_liver"], float)
    us = truth.get("ultrasound")
    if us:
        mr_truth["reference_to_mr"] = (invert(rigid) @ np.asarray(us["reference_to_ct"], float)).tolist()
    return mr_truth


def readme_lines(mr: dict) -> List[str]:
    """README.txt lines about the MR."""
    only = mr["mr_only_lesion"]
    return ["", "MR (mr_hbp.nii.gz, DICOM in mr/hbp): hepatobiliary-phase T1 of the same patient in another",
            "breath-hold (frame: the MR scanner's LPS). truth.json 'mr': the MR -> CT mapping, its best rigid",
            "fit over the liver, every lesion and landmark in MR coordinates, reference_to_mr for the sweeps.",
            f"  {only['name']}: {only['type']}, {only['diameter_mm']:.0f} mm, seen only on the MR, "
            f"centroid MR {only['centroid_mr']} (CT {only['centroid_ct']})"]
