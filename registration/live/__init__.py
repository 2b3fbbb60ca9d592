"""Live tracked ultrasound over OpenIGTLink (PlusServer's protocol).

Owns message conversion to and from our frames (igtl_protocol), a replay
server that streams a recorded sweep (igtl_server), the client that receives
images and transforms (igtl_client) and the recorder that writes what arrived
as a PLUS sequence (live_recorder), tracked tools (a needle) included. May
import ``registration.tracking``, ``registration.io`` and
``registration.spatial`` (and pyigtl); independent of ``registration.align``.
"""
