"""DICOM networking with a PACS: associations, query, retrieve, store.

Owns the PACS address and our AE title (``AET@HOST:PORT``), opening and
closing associations with clear errors (rejected, refused, time-out),
C-FIND at study, series and image level, retrieval of one series by C-GET
or by C-MOVE to our own storage SCP (received into a temporary folder,
checked against what the PACS announced, moved into place at the end), and
C-STORE of files or datasets. Knows nothing of plans: it moves DICOM
instances. Long calls take ``progress(fraction, message)`` (returning False
cancels) so a Qt worker can drive them. May import ``registration.io`` and
``registration.spatial`` (and pydicom, pynetdicom); independent of
``registration.align`` and ``registration.live``.
"""
