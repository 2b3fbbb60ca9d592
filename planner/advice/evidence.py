"""The evidence quoted by advisories: one line per code (``kind``), sources in
docs/clinical_evidence.md and DESIGN section 1."""
from __future__ import annotations

from .fusion_need import CLINICAL_TRE_MEAN_MM, CLINICAL_TRE_RMS_MM, CLINICAL_TRE_SD_MM

EVIDENCE = {
    "mri": ("MRI with a hepatobiliary agent: sensitivity 83-100 % vs 45-76 % for CT, accuracy 94 % vs "
            "74-77 %; finds CT-occult metastases in 10-23 %; CT specificity 83-94 % (6-17 % false positives)"),
    "laparoscopy": "laparoscopy with laparoscopic US finds occult metastases in 15-23 % of patients "
                   "judged resectable on CT",
    "eus_pancreas": "metastases to the pancreas (renal, lung, breast, colon, melanoma) are 2-5 % of "
                    "pancreatic malignancies",
    "not_visible_on_bmode": "up to one fifth of liver lesions are not visible on B-mode US at all; "
                            "pancreatic adenocarcinoma metastases are small and hypoechoic",
    "ceus": "NET metastases on CEUS: arterial hyperenhancement 83 %, portal-phase washout 78 % "
            "(Massironi 2010, n = 18)",
    "ceus_option": ("CEUS (portal/late-phase washout) raised per-lesion sensitivity from 69 % to 90 % "
                    "(Albrecht) and from 40 % to 83 % (Quaia, 253 patients); CEUS-guided biopsy of lesions "
                    "poorly seen on B-mode succeeded in 23 of 26 (Partovi)"),
    "ct_biopsy": "CT-guided percutaneous liver biopsy: sensitivity 93 %, specificity 100 %",
    "fusion": (f"clinical US-CT fusion error {CLINICAL_TRE_MEAN_MM:g} +/- {CLINICAL_TRE_SD_MM:g} mm automatic "
               f"({CLINICAL_TRE_RMS_MM:.1f} mm rms), 6.3 +/- 5.0 mm manual (RCT); fusion made 13 of 13 lesions "
               "invisible on conventional US visible (Ahn)"),
    "double_oblique": ("double-oblique (out-of-gantry-plane) paths are a standard technique for difficult "
                       "targets (Low and Huang 2018); 39 of 55 navigated liver biopsy paths were double oblique "
                       "(PMC4927599); the needle is checked by stepwise scans or CT fluoroscopy"),
    "least_risk": ("no published margin makes such a path safe: it breaks a hard rule of "
                   "docs/clinical_evidence.md section 4; shown so the operator can judge it, never as a plan"),
    "ct_sensitivity": "CT sensitivity for liver metastases 73-80 %, many lesions < 10 mm are missed",
}


def advisory(kind: str, text: str) -> dict:
    """An advisory: its code ``kind`` (a key of EVIDENCE), what to consider and the evidence."""
    return {"kind": kind, "text": text, "evidence": EVIDENCE[kind]}
