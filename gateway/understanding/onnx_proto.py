"""The few ONNX protobuf messages :func:`gateway.understanding.onnx_e5.build` writes, encoded by hand.

Importing the ``onnx`` package to build the graph cost about half a second and 17 MiB of every gateway process
(docs/understanding.md, "Engine"); ONNX Runtime only needs the serialised model. Each function here returns what the
``onnx`` helper of the same name (``onnx.helper.make_node``, ``numpy_helper.from_array``, …) serialises to, byte for
byte: fields in field-number order, proto2's unpacked repeated integers, an attribute's list sorted by name
(``tests/understanding/test_onnx_proto.py`` checks it against ``onnx`` itself). Nothing here parses.

A message is kept as its chunks (a list of bytes-like pieces) and joined once, by :func:`serialise`: a tensor's data
is copied into the model's bytes once and never into a nested message of its own.

Field numbers: onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto,
TypeProto, TensorShapeProto, OperatorSetIdProto).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Message = list[Any]  # bytes-like chunks: bytes, or a C-contiguous array's memory

FLOAT, UINT8, INT64 = 1, 2, 7  # TensorProto.DataType
DATA_TYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int64): INT64}
ATTRIBUTE_FLOAT, ATTRIBUTE_INT, ATTRIBUTE_INTS = 1, 2, 7  # AttributeProto.AttributeType


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 is its two's complement, ten bytes
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _size(message: Message) -> int:
    return sum(memoryview(chunk).nbytes for chunk in message)


def _int(field: int, value: int) -> Message:
    return [_varint(field << 3), _varint(value)]


def _bytes(field: int, value: bytes | str) -> Message:
    data = value.encode() if isinstance(value, str) else value
    return [_varint(field << 3 | 2), _varint(len(data)), data]


def _nested(field: int, message: Message) -> Message:
    return [_varint(field << 3 | 2), _varint(_size(message)), *message]


def attribute(name: str, value: int | float | Sequence[int]) -> Message:
    """``make_attribute``: an int, a float, or a list of ints."""
    out = _bytes(1, name)
    if isinstance(value, int):
        return out + _int(3, value) + _int(20, ATTRIBUTE_INT)
    if isinstance(value, float):
        return [*out, _varint(2 << 3 | 5), struct.pack("<f", value), *_int(20, ATTRIBUTE_FLOAT)]
    return out + [chunk for v in value for chunk in _int(8, v)] + _int(20, ATTRIBUTE_INTS)


def node(kind: str, inputs: Sequence[str], outputs: Sequence[str], domain: str | None = None, **attrs: Any) -> Message:
    """``make_node`` (no name, no doc string); the attributes sorted by name, as ``make_node`` does."""
    out = [chunk for name in inputs for chunk in _bytes(1, name)]
    out += [chunk for name in outputs for chunk in _bytes(2, name)]
    out += _bytes(4, kind)
    out += [chunk for key in sorted(attrs) for chunk in _nested(5, attribute(key, attrs[key]))]
    return out + (_bytes(7, domain) if domain is not None else [])


def tensor(name: str, value: npt.NDArray[Any]) -> Message:
    """``numpy_helper.from_array``: the dims, the data type, the name, the raw little-endian data (not copied)."""
    array = value if value.flags.c_contiguous else value.copy(order="C")  # a 0-d array stays one (no dims)
    if array.dtype not in DATA_TYPES or array.dtype.byteorder == ">":
        raise TypeError(f"{name}: {array.dtype} is not one of {', '.join(map(str, DATA_TYPES))}")
    out = [chunk for dim in array.shape for chunk in _int(1, dim)] + _int(2, DATA_TYPES[array.dtype])
    data = array.reshape(-1).view(np.uint8)  # a view of the same memory
    return out + _bytes(8, name) + [_varint(9 << 3 | 2), _varint(data.nbytes), data]


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> Message:
    """``make_tensor_value_info``: a tensor of that element type and shape (a str names a symbolic dimension)."""
    dims: Message = []
    for d in shape:
        dims += _nested(1, _int(1, d) if isinstance(d, int) else _bytes(2, d))
    tensor_type = _int(1, elem_type) + _nested(2, dims)
    return _bytes(1, name) + _nested(2, _nested(1, tensor_type))


def graph(nodes: Sequence[Message], name: str, inputs: Sequence[Message], outputs: Sequence[Message],
          initializers: Sequence[Message]) -> Message:  # fmt: skip
    """``make_graph``: nodes, name, initializers, inputs, outputs (in field order)."""
    out = [chunk for n in nodes for chunk in _nested(1, n)] + _bytes(2, name)
    out += [chunk for t in initializers for chunk in _nested(5, t)]
    out += [chunk for v in inputs for chunk in _nested(11, v)]
    return out + [chunk for v in outputs for chunk in _nested(12, v)]


def model(body: Message, ir_version: int, opsets: Sequence[tuple[str, int]]) -> Message:
    """``make_model(graph, opset_imports=…)`` with its ``ir_version`` set: each opset's domain written even when
    empty, as ``make_opsetid`` sets it."""
    out = _int(1, ir_version) + _nested(7, body)
    return out + [chunk for domain, version in opsets for chunk in _nested(8, _bytes(1, domain) + _int(2, version))]


def serialise(message: Message) -> bytes:
    return b"".join(message)
