"""A second risk head beside the first (``Classifier.with_second_risk``, ``gateway understanding combine``): each risk
class scores the higher of the two heads', so a reading can only rise; it is saved and loaded with the weights, and
a head trained on other features or classes is refused (docs/understanding.md, "Thirteenth round")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.cli import main
from gateway.errors import ModelError
from gateway.flows.reading import RISKS, Risk
from gateway.understanding.classifier import NGRAM_DIM, Classifier, Head

DIM = 8 + NGRAM_DIM  # an 8-dimension embedding and the hashed n-grams


def classifier(seed: int, dim: int = DIM) -> Classifier:
    rng = np.random.default_rng(seed)
    risk = tuple(sorted(r.value for r in RISKS))

    def head(classes: tuple[str, ...]) -> Head:
        return Head(classes, rng.normal(size=(dim, len(classes))) * 0.3, rng.normal(size=len(classes)))

    return Classifier("synthetic", head(risk), head(("_none", "hacked")), head(("no", "yes")))


def embedding(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=8)
    return vector / np.linalg.norm(vector)


TEXTS = ["jsuis fatigue de tout", "il a un couteau", "mdr ce prof me tue", "c notre secret il a dit", "kms"]


def test_each_class_scores_the_higher_of_the_two_heads_so_a_reading_only_rises() -> None:
    first, second = classifier(1), classifier(2)
    both = first.with_second_risk(second)
    rose = 0
    for i, text in enumerate(TEXTS):
        window = [("il a un couteau", embedding(100 + i))]
        a, b, c = (x.read(text, embedding(i), window) for x in (first, second, both))
        for risk in RISKS:
            assert c.score(risk) == max(a.score(risk), b.score(risk))
            rose += c.score(risk) > a.score(risk)
        assert (c.topic, c.topic_score, c.third_party) == (a.topic, a.topic_score, a.third_party)  # the first's
    assert rose  # the second head did raise some scores: the test would see it ignored


def test_the_second_head_is_saved_and_loaded_with_the_weights_and_combine_writes_the_same_bytes(
    tmp_path: Path,
) -> None:
    first, second = classifier(1), classifier(2)
    first.save(tmp_path / "a.npz")
    second.save(tmp_path / "b.npz")
    assert Classifier.load(tmp_path / "a.npz").second_risk is None  # a file without one reads as before
    for name in ("c1.npz", "c2.npz"):
        assert main(["understanding", "combine", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "-o",
                     str(tmp_path / name)]) == 0  # fmt: skip
    assert (tmp_path / "c1.npz").read_bytes() == (tmp_path / "c2.npz").read_bytes()
    loaded = Classifier.load(tmp_path / "c1.npz")
    direct = first.with_second_risk(second)
    for i, text in enumerate(TEXTS):
        assert loaded.read(text, embedding(i)) == direct.read(text, embedding(i))


def test_a_second_head_of_other_features_or_classes_is_refused(tmp_path: Path) -> None:
    first = classifier(1)
    with pytest.raises(ModelError):
        first.with_second_risk(classifier(2, dim=DIM + 1))
    other = classifier(2)
    renamed = Classifier(other.model_name, Head(("a", "b", "c", "d", "e"), other.risk.weights, other.risk.bias),
                         other.topic, other.third_party)  # fmt: skip
    with pytest.raises(ModelError):
        first.with_second_risk(renamed)


def test_an_opinion_on_some_classes_raises_those_only_and_carries_the_added_files_opinions(tmp_path: Path) -> None:
    """The fifteenth round's third opinion: a file's risk heads (its own and its second) added for suicide only."""
    first, second, third = classifier(1), classifier(2), classifier(3)
    former = second.with_second_risk(third)  # a file with two risk heads, as the former weights
    both = first.with_second_risk(former, only=["suicide"])
    assert [o.raises for o in both.opinions] == [("suicide",), ("suicide",)]
    rose = 0
    for i, text in enumerate(TEXTS):
        window = [("il a un couteau", embedding(100 + i))]
        a, b, c, d = (x.read(text, embedding(i), window) for x in (first, second, third, both))
        for risk in RISKS:
            if risk.value == "suicide":
                assert d.score(risk) == max(a.score(risk), b.score(risk), c.score(risk))
                rose += d.score(risk) > a.score(risk)
            else:
                assert d.score(risk) == a.score(risk)  # the other classes are the first's, never raised
        assert (d.topic, d.topic_score, d.third_party) == (a.topic, a.topic_score, a.third_party)
    assert rose
    first.save(tmp_path / "a.npz")
    former.save(tmp_path / "f.npz")
    out = tmp_path / "u.npz"
    assert main(["understanding", "combine", str(tmp_path / "a.npz"), str(tmp_path / "f.npz"), "--only", "suicide",
                 "-o", str(out)]) == 0  # fmt: skip
    loaded = Classifier.load(out)
    assert [o.raises for o in loaded.opinions] == [("suicide",), ("suicide",)]
    for i, text in enumerate(TEXTS):
        assert loaded.read(text, embedding(i)) == both.read(text, embedding(i))


def test_an_opinion_on_no_class_or_an_unknown_class_is_refused() -> None:
    first, second = classifier(1), classifier(2)
    for only in ([], ["suicidal"]):
        with pytest.raises(ModelError):
            first.with_second_risk(second, only=only)


def test_an_opinion_with_a_floor_raises_only_from_its_floor_up_and_keeps_it_when_saved(tmp_path: Path) -> None:
    """An opinion counted only where it is confident (the fifteenth round's third part): below its floor it raises
    nothing; saved and loaded with the weights (``riskN_floor``), and ``combine --floor`` writes the same."""
    first, second = classifier(1), classifier(2)
    floor = 0.3
    both = first.with_second_risk(second, only=["suicide"], floor=floor)
    kept = raised = 0
    for i, text in enumerate(TEXTS * 4):
        a, b, c = (x.read(text, embedding(i)) for x in (first, second, both))
        mine, theirs = a.score(Risk.SUICIDE), b.score(Risk.SUICIDE)
        assert c.score(Risk.SUICIDE) == (max(mine, theirs) if theirs >= floor else mine)
        kept += theirs < floor and theirs > mine  # below its floor, a higher score of its own raised nothing
        raised += c.score(Risk.SUICIDE) > mine
    assert kept and raised  # both sides of the floor were seen
    first.save(tmp_path / "a.npz")
    second.save(tmp_path / "b.npz")
    out = tmp_path / "f.npz"
    assert main(["understanding", "combine", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--only", "suicide",
                 "--floor", str(floor), "-o", str(out)]) == 0  # fmt: skip
    loaded = Classifier.load(out)
    assert [(o.raises, o.floor) for o in loaded.opinions] == [(("suicide",), floor)]
    for i, text in enumerate(TEXTS):
        assert loaded.read(text, embedding(i)) == both.read(text, embedding(i))
    with pytest.raises(ModelError):
        first.with_second_risk(second, floor=1.0)
