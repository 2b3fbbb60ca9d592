"""Opening and closing one DICOM association with a :class:`~registration.pacs.node.Pacs`.

:func:`associate` checks the TCP connection first (so "nothing listens" and
"unknown host" are told apart from a DICOM refusal), then negotiates the
given presentation contexts with pynetdicom and turns every failure into one
:class:`~registration.pacs.node.PacsError` that says what to fix: the PACS
AE title (called AET not recognised), ours (calling AET not registered at the
PACS), the port, or a PACS that does not answer in time. The association is
released on success and aborted when the body raises.

Status codes of DIMSE responses are classified by :func:`status_text` with
pynetdicom's own tables (PS3.4 Annex C and B).
"""
from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional, Sequence, Tuple

from pynetdicom import AE
from pynetdicom.status import code_to_category

from .node import Pacs, PacsError

Context = Tuple[str, Sequence[str]]          # (abstract syntax UID, transfer syntax UIDs)


def _check_reachable(pacs: Pacs) -> None:
    try:
        with socket.create_connection((pacs.host, pacs.port), timeout=pacs.connect_timeout_s):
            pass
    except socket.gaierror:
        raise PacsError(f"host '{pacs.host}' is unknown", path=str(pacs),
                        fix="check the host name or address in --server AET@HOST:PORT") from None
    except ConnectionRefusedError:
        raise PacsError(f"nothing listens on {pacs.host}:{pacs.port} (connection refused)",
                        path=str(pacs), fix="check that the PACS is running and the port number") from None
    except socket.timeout:
        raise PacsError(f"no TCP connection to {pacs.host}:{pacs.port} within {pacs.connect_timeout_s:g} s",
                        path=str(pacs), fix="check the address, the port and any firewall") from None
    except OSError as exc:
        raise PacsError(f"cannot connect to {pacs.host}:{pacs.port} ({exc.strerror or exc})",
                        path=str(pacs), fix="check the address and the network") from None


def _rejection(assoc):
    """The peer's A-ASSOCIATE rejection, or None when it sent none.

    pynetdicom (3.0) can miss a rejection: when the peer answers and closes the
    connection before the requesting thread has checked that the socket is
    connected (a busy CPU is enough), it aborts without reading the answer. The
    answer is then still in the DUL's queue to the user, so it is looked up there.
    """
    rsp = assoc.acceptor.primitive
    if assoc.is_rejected and rsp is not None:
        return rsp
    from pynetdicom.pdu_primitives import A_ASSOCIATE
    for primitive in list(getattr(getattr(assoc.dul, "to_user_queue", None), "queue", ())):
        if isinstance(primitive, A_ASSOCIATE) and primitive.result in (0x01, 0x02):
            return primitive
    return None


def _why_not(assoc, pacs: Pacs) -> PacsError:
    rsp = _rejection(assoc)
    if rsp is not None:
        reason = str(getattr(rsp, "reason_str", "") or "no reason given")
        if "Called AE" in reason:
            fix = f"check the PACS AE title (the part before @ in --server; '{pacs.called_aet}' is not it)"
        elif "Calling AE" in reason:
            fix = (f"ask the PACS administrator to register our AE title '{pacs.calling_aet}' with this "
                   "computer's address, or pass --calling-aet with the AE title registered for it")
        else:
            fix = "ask the PACS administrator; the PACS may be busy (try again) or not configured for us"
        return PacsError(f"association rejected ({rsp.result_str}, by the {rsp.source_str}: {reason})",
                         path=str(pacs), fix=fix)
    return PacsError(f"accepted the connection but did not accept the association within "
                     f"{pacs.timeout_s:g} s (no answer, or aborted)", path=str(pacs),
                     fix="check that this port is the PACS's DICOM port and that it knows our AE "
                         f"title '{pacs.calling_aet}'")


def status_text(code: int, table: Optional[dict] = None) -> str:
    """'0xA702 Failure: Refused: Out of resources...' from pynetdicom's status tables."""
    category = code_to_category(int(code))
    desc = (table or {}).get(int(code), (category, ""))[1]
    return f"0x{int(code):04X} {category}" + (f": {desc}" if desc else "")


@contextmanager
def associate(pacs: Pacs, contexts: Iterable[Context], *, roles: Sequence = (),
              handlers: Sequence = (), need: Sequence[str] = ()) -> Iterator:
    """An established pynetdicom ``Association`` (released at the end, aborted on error).

    ``contexts``: presentation contexts to propose; ``roles``: SCP/SCU role
    selection items (``pynetdicom.build_role``, for C-GET); ``handlers``:
    event handlers (``[(evt.EVT_C_STORE, fn)]``); ``need``: abstract syntaxes
    the PACS must accept, else PacsError naming the service.
    """
    _check_reachable(pacs)
    ae = AE(ae_title=pacs.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = pacs.timeout_s
    ae.connection_timeout = pacs.connect_timeout_s
    for uid, syntaxes in contexts:
        ae.add_requested_context(uid, list(syntaxes))
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.called_aet, ext_neg=list(roles) or None,
                         evt_handlers=list(handlers) or None)
    if not assoc.is_established:
        raise _why_not(assoc, pacs)
    try:
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        missing = [uid for uid in need if uid not in accepted]
        if missing:
            from pydicom.uid import UID
            raise PacsError("does not offer " + ", ".join(UID(u).name for u in missing), path=str(pacs),
                            fix="ask the PACS administrator to allow this service for our AE title "
                                f"'{pacs.calling_aet}'")
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()
