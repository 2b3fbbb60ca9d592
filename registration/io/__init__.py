"""Readers and writers of the ecosystem's files.

Owns CT images and DICOM series (listing, headers, contrast phase, loading,
writing), label maps and their names (NRRD/NIfTI, Slicer ``.seg.nrrd``, DICOM
SEG, resampling onto a CT), PLUS sequence metafiles and Slicer ``.seq.nrrd``
sweeps, and PLUS device-set configs with their calibration merge. Converts to
LPS and to our matrix conventions once, here, at the file boundary. May import
``registration.spatial`` (and pydicom, SimpleITK), nothing above it.
"""
