"""Raw-bytes access to Cyclone DDS readers and writers, and entity deletion: the one place
that uses internals of the cyclonedds Python binding.

``DataWriter.write`` / ``DataReader.take`` of the cyclonedds binding call the type's
``serialize`` / ``deserialize``; the transport instead hands CDR bytes straight to the
C layer (``ddspy_write`` / ``ddspy_take``, which is what those methods do underneath), so
that recording gets the bytes exactly as sent and the codec runs once.

Padding: the DDS payload is padded to a multiple of 4 bytes and, as XCDR specifies, the
number of padding bytes is stored in the two low bits of the encapsulation options;
:func:`raw_take` removes that padding again (and clears the count), so a raw subscriber
gets exactly the bytes the publisher serialised.
"""

from __future__ import annotations

from typing import Any

from cyclonedds._clayer import ddspy_take, ddspy_write

__all__ = ["delete_entities", "raw_take", "raw_write", "strip_padding"]

_PAD = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")


def raw_write(writer: Any, data: bytes) -> int:
    """Write CDR bytes (with encapsulation header) on ``writer``; returns the DDS return code."""
    pad = -len(data) & 3
    if pad:
        data = b"".join((data[:3], bytes(((data[3] & 0xFC) | pad,)), data[4:], _PAD[pad]))
    return ddspy_write(writer._ref, data)


def strip_padding(data: bytes) -> bytes:
    """Remove the trailing padding announced in the encapsulation options (XCDR) and clear
    that count, giving the bytes a serialiser (rosbags, :func:`cdr.serialize`) produces."""
    pad = data[3] & 3 if len(data) >= 4 else 0
    if pad and len(data) - pad >= 4:
        return b"".join((data[:3], bytes((data[3] & 0xFC,)), data[4: len(data) - pad]))
    return data


def raw_take(reader: Any, mask: int, max_samples: int, *, remove_padding: bool = True) -> list[bytes]:
    """Take up to ``max_samples`` valid samples from ``reader`` as CDR bytes.

    ``remove_padding=False`` skips the copy that removing the padding costs (decoders
    ignore trailing bytes)."""
    result = ddspy_take(reader._ref, mask, max_samples)
    if isinstance(result, int):
        if result < 0:
            raise RuntimeError(f"DDS take failed (return code {result})")
        return []
    if remove_padding:
        return [strip_padding(data) for data, info in result if info.valid_data]
    return [data for data, info in result if info.valid_data]


def delete_entities(*entities: Any) -> None:
    """Delete DDS entities now, in the order given (children before parents).

    The binding deletes an entity when its Python object is garbage collected; deleting
    explicitly makes shutdown deterministic, and unregistering the object first keeps its
    later ``__del__`` from deleting a handle twice.
    """
    from cyclonedds.core import Entity

    for entity in entities:
        ref = getattr(entity, "_ref", None)
        if ref is not None and Entity._entities.pop(ref, None) is not None:
            entity._delete(ref)
