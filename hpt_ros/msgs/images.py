"""sensor_msgs Image / CompressedImage <-> numpy, with numpy and OpenCV only (cv_bridge optional).

Raw encodings handled (what robot cameras send): rgb8, bgr8, rgba8, bgra8, mono8 (colour
and grey, uint8), mono16 and 16UC1 (uint16), 32FC1 (float32 depth). ``step`` (row
padding) and ``is_bigendian`` are honoured. :func:`image_to_numpy` returns the native
array, a zero-copy (possibly read-only) view of the message buffer where the layout
allows; copy it before writing into it. :func:`image_to_rgb` returns what the vision
model takes: a C-contiguous uint8 HxWx3 RGB array (for rgb8 without row padding a
read-only view, else a new array); 16-bit and float images are depth or infrared, not a
colour camera, and are refused. Colour conversions use OpenCV (``cv2``, imported lazily).

CompressedImage: jpeg and png via ``cv2.imdecode``; ``format`` may be ``"jpeg"``,
``"png"`` or image_transport's ``"rgb8; jpeg compressed bgr8"``. Compressed depth
(``"16UC1; compressedDepth png"``) is refused.

cv_bridge, when importable, gives the same arrays (:func:`image_to_numpy_cv_bridge`); the
numpy path is the default and the tested one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._flavours import set_number_array
from .errors import MessageConversionError
from .stamps import seconds_to_stamp

__all__ = [
    "COLOUR_ENCODINGS",
    "IMAGE_ENCODINGS",
    "compressed_image_to_rgb",
    "image_to_numpy",
    "image_to_numpy_cv_bridge",
    "image_to_rgb",
    "numpy_to_image",
    "rgb_to_compressed",
]

_IMAGE = "sensor_msgs/msg/Image"
_COMPRESSED = "sensor_msgs/msg/CompressedImage"


@dataclass(frozen=True)
class _Encoding:
    dtype: np.dtype  # little-endian
    channels: int


IMAGE_ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding(np.dtype("u1"), 3),
    "bgr8": _Encoding(np.dtype("u1"), 3),
    "rgba8": _Encoding(np.dtype("u1"), 4),
    "bgra8": _Encoding(np.dtype("u1"), 4),
    "mono8": _Encoding(np.dtype("u1"), 1),
    "mono16": _Encoding(np.dtype("<u2"), 1),
    "16UC1": _Encoding(np.dtype("<u2"), 1),
    "32FC1": _Encoding(np.dtype("<f4"), 1),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
_SUPPORTED = ", ".join(IMAGE_ENCODINGS)
_BY_LOWER_NAME = {name.lower(): name for name in IMAGE_ENCODINGS}
_TO_RGB = {"bgr8": "COLOR_BGR2RGB", "bgra8": "COLOR_BGRA2RGB", "rgba8": "COLOR_RGBA2RGB", "mono8": "COLOR_GRAY2RGB"}


def _encoding_of(msg: Any, topic: str) -> tuple[str, _Encoding]:
    """(canonical name, spec) of ``msg.encoding``; names match case-insensitively."""
    name = _BY_LOWER_NAME.get(str(msg.encoding).lower())
    if name is None:
        raise MessageConversionError(topic, _IMAGE, f"unsupported encoding {msg.encoding!r}; supported: {_SUPPORTED}")
    return name, IMAGE_ENCODINGS[name]


def _byte_buffer(data: Any) -> Any:
    """A buffer-protocol object over the bytes of a uint8[] field (zero-copy when possible)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype == np.uint8 and data.flags.c_contiguous else np.ascontiguousarray(data, np.uint8)
    try:
        return memoryview(data)  # array.array('B') of rclpy
    except TypeError:
        return np.asarray(data, dtype=np.uint8)  # a plain list


def image_to_numpy(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """The image as a native-endian array: HxW (one channel) or HxWxC, dtype by encoding."""
    name, spec = _encoding_of(msg, topic)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    pixel_bytes = spec.channels * spec.dtype.itemsize
    row_bytes = width * pixel_bytes
    if height <= 0 or width <= 0:
        raise MessageConversionError(topic, _IMAGE, f"empty image ({width}x{height}, encoding {name})")
    if step < row_bytes:
        raise MessageConversionError(
            topic, _IMAGE, f"step {step} is smaller than a row of {width} {name} pixels ({row_bytes} bytes)")
    buffer = _byte_buffer(msg.data)
    size = buffer.nbytes if isinstance(buffer, (memoryview, np.ndarray)) else len(buffer)
    needed = step * (height - 1) + row_bytes
    if size < needed:
        raise MessageConversionError(
            topic, _IMAGE,
            f"data has {size} bytes, a {width}x{height} {name} image with step {step} needs {step * height}")
    dtype = spec.dtype
    if dtype.itemsize > 1 and bool(msg.is_bigendian):
        dtype = dtype.newbyteorder(">")
    shape: tuple[int, ...] = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    strides: tuple[int, ...] = (step, pixel_bytes) if spec.channels == 1 else (step, pixel_bytes, dtype.itemsize)
    array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=0, strides=strides)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def image_to_rgb(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """The image as a C-contiguous uint8 HxWx3 RGB array (colour and mono8 encodings)."""
    name, _ = _encoding_of(msg, topic)
    if name not in COLOUR_ENCODINGS:
        raise MessageConversionError(
            topic, _IMAGE,
            f"encoding {name!r} is a depth/16-bit/float image, not a colour camera; colour encodings are "
            f"{', '.join(COLOUR_ENCODINGS)} (image_to_numpy reads {name})")
    array = image_to_numpy(msg, topic)
    if name == "rgb8":
        return np.ascontiguousarray(array)
    import cv2  # lazy; channel shuffles in OpenCV are ~20x faster than numpy copies

    return cv2.cvtColor(array, getattr(cv2, _TO_RGB[name]))


def numpy_to_image(msg: Any, array: np.ndarray, encoding: str, stamp_s: float | None = None,
                   frame_id: str = "", topic: str = "<unknown>") -> Any:
    """Fill an Image message from ``array`` (HxW or HxWxC, dtype matching ``encoding``); returns it.

    Without a copy where possible: the message's data may share memory with ``array``
    until it is published.
    """
    spec = IMAGE_ENCODINGS.get(encoding)
    if spec is None:
        raise MessageConversionError(topic, _IMAGE, f"unsupported encoding {encoding!r}; supported: {_SUPPORTED}")
    array = np.asarray(array)
    if array.ndim == 3 and spec.channels == 1 and array.shape[2] == 1:
        array = array[..., 0]
    expected_ndim = 2 if spec.channels == 1 else 3
    if array.ndim != expected_ndim or (expected_ndim == 3 and array.shape[2] != spec.channels):
        want = "HxW" if spec.channels == 1 else f"HxWx{spec.channels}"
        raise MessageConversionError(topic, _IMAGE, f"{encoding} needs a {want} array, got shape {array.shape}")
    if array.dtype.newbyteorder("=") != spec.dtype.newbyteorder("="):
        raise MessageConversionError(
            topic, _IMAGE, f"{encoding} needs dtype {spec.dtype.newbyteorder('=').name}, got {array.dtype.name}")
    native = np.ascontiguousarray(array, dtype=spec.dtype.newbyteorder("="))
    height, width = native.shape[:2]
    if stamp_s is not None:
        seconds_to_stamp(msg.header.stamp, stamp_s)
    msg.header.frame_id = frame_id
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and spec.dtype.itemsize > 1)
    msg.step = width * spec.channels * spec.dtype.itemsize
    set_number_array(msg, "data", native.reshape(-1).view(np.uint8))
    return msg


# ----------------------------------------------------------------------------- compressed
def _compressed_codec(fmt: str) -> str | None:
    lowered = fmt.lower()
    if "compresseddepth" in lowered:
        return "depth"
    if "jpeg" in lowered or "jpg" in lowered:
        return "jpeg"
    if "png" in lowered:
        return "png"
    return None


def compressed_image_to_rgb(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """Decode a jpeg/png CompressedImage to a C-contiguous uint8 HxWx3 RGB array."""
    import cv2  # lazy: only compressed images need OpenCV

    fmt = str(msg.format)
    codec = _compressed_codec(fmt)
    if codec == "depth":
        raise MessageConversionError(topic, _COMPRESSED, f"format {fmt!r} is compressed depth, not a colour image")
    if codec is None and fmt.strip():
        raise MessageConversionError(topic, _COMPRESSED, f"unsupported format {fmt!r}; supported: jpeg, png")
    buffer = np.frombuffer(_byte_buffer(msg.data), dtype=np.uint8)
    if buffer.size == 0:
        raise MessageConversionError(topic, _COMPRESSED, "empty data")
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        bgr, reason = None, str(exc).strip()
    else:
        reason = "not a valid image"
    if bgr is None:
        raise MessageConversionError(
            topic, _COMPRESSED, f"could not decode {buffer.size} bytes of format {fmt!r}: {reason}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def rgb_to_compressed(msg: Any, rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90,
                      stamp_s: float | None = None, frame_id: str = "", topic: str = "<unknown>") -> Any:
    """Fill a CompressedImage with ``rgb`` (uint8 HxWx3) encoded as jpeg or png; returns it."""
    import cv2

    codec = _compressed_codec(fmt)
    if codec not in ("jpeg", "png"):
        raise MessageConversionError(topic, _COMPRESSED, f"unsupported format {fmt!r}; supported: jpeg, png")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MessageConversionError(
            topic, _COMPRESSED, f"needs a uint8 HxWx3 RGB array, got {rgb.dtype.name} {rgb.shape}")
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:
        raise MessageConversionError(topic, _COMPRESSED, f"OpenCV could not encode a {rgb.shape} image as {codec}")
    if stamp_s is not None:
        seconds_to_stamp(msg.header.stamp, stamp_s)
    msg.header.frame_id = frame_id
    msg.format = codec
    set_number_array(msg, "data", encoded.reshape(-1))
    return msg


# ----------------------------------------------------------------------------- cv_bridge
def image_to_numpy_cv_bridge(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """Same result as :func:`image_to_numpy` through cv_bridge (ImportError when absent)."""
    from cv_bridge import CvBridge  # type: ignore[import-not-found]

    name, _ = _encoding_of(msg, topic)
    try:
        return np.asarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough"))
    except Exception as exc:  # noqa: BLE001 - cv_bridge raises CvBridgeError and others
        raise MessageConversionError(topic, _IMAGE, f"cv_bridge could not convert {name}: {exc}") from exc
