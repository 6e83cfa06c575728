"""``make weights``' recipe at its L2s without the cross-validation, with more files in both heads' corpora, to a file
of one's own (docs/understanding.md, "Nineteenth round"): ``OMP_NUM_THREADS=1 python bench/refit.py -o /tmp/X.npz
corpus/dev15a.jsonl corpus/dev15b.jsonl``.

The first heads (risk, topic, third party) by the shipped fixed-rate descent at L2 1e-4 (what the cross-validated
log-loss chose for the shipped first heads and for the fourteenth and fifteenth rounds' T and W) on ``train.jsonl``,
``make weights``' seven development files and the extra files; the second risk head by L-BFGS at L2 3e-4 on the five
``train*.jsonl`` files, the seven and the extra files; combined as ``gateway understanding combine`` does. Writes
OUT, and OUT's ``-first`` and ``-second`` files beside it. Embeddings by the ONNX engine on one thread through the
embedding cache (``--cache``, ``make weights``' ``var/e5-cache`` by default). Never the shipped file: ``-o`` is
required and may not be ``gateway/understanding/weights.npz``; never a held-out file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.understanding import Classifier  # noqa: E402
from gateway.understanding.classifier import DESCENT, LBFGS  # noqa: E402
from gateway.understanding.onnx_e5 import OnnxE5  # noqa: E402
from gateway.understanding.training import Example, embed_corpus, fit_logged, load_corpus  # noqa: E402

DEV = [f"corpus/{name}.jsonl" for name in ("dev11a", "dev11b", "dev11c", "dev12d", "dev12e", "dev12f", "dev12g")]
FIRST = ["corpus/train.jsonl", *DEV]  # the Makefile's FIRST_CORPUS
SECOND = [f"corpus/{name}.jsonl" for name in ("train", "train_short", "train_long", "train_negatives", "train6")] + DEV


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extra", nargs="*", help="files added to both heads' corpora")
    parser.add_argument("-o", "--output", required=True, help="the combined weights (not the shipped file)")
    parser.add_argument("--cache", default=str(ROOT / "var" / "e5-cache"), help="the embedding cache")
    args = parser.parse_args()
    output = Path(args.output).resolve()
    if output == (ROOT / "gateway" / "understanding" / "weights.npz").resolve():
        parser.error("the shipped weights are rebuilt by `make weights` only")
    if any(Path(f).name.startswith("heldout") for f in args.extra):
        parser.error("the held-out files measure generalisation only (corpus/README.md): never trained on")
    embedder, cache, start = OnnxE5(threads=1), Path(args.cache), time.perf_counter()

    def examples(files: list[str]) -> list[Example]:
        return [e for f in files for e in load_corpus(ROOT / f if not Path(f).is_absolute() else Path(f))]

    def log(line: str) -> None:
        print(f"{line} ({time.perf_counter() - start:.0f} s)", flush=True)

    first_examples = examples([*FIRST, *args.extra])
    first_x = embed_corpus([e.text for e in first_examples], embedder, cache).x
    log(f"first heads' corpus: {len(first_examples)} messages embedded")
    first = Classifier(
        model_name=embedder.name,
        risk=fit_logged("risk", first_x, [e.risk for e in first_examples], 1e-4, log, DESCENT),
        topic=fit_logged("topic", first_x, [e.topic for e in first_examples], 1e-4, log, DESCENT),
        third_party=fit_logged(
            "third party", first_x, ["yes" if e.third_party else "no" for e in first_examples], 1e-4, log, DESCENT
        ),
    )
    second_examples = examples([*SECOND, *args.extra])
    second_x = embed_corpus([e.text for e in second_examples], embedder, cache).x
    log(f"second risk head's corpus: {len(second_examples)} messages embedded")
    second = Classifier(
        model_name=embedder.name,
        risk=fit_logged("second risk", second_x, [e.risk for e in second_examples], 3e-4, log, LBFGS),
        topic=first.topic,
        third_party=first.third_party,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    first.save(output.with_name(f"{output.stem}-first.npz"))
    second.save(output.with_name(f"{output.stem}-second.npz"))
    first.with_second_risk(second).save(output)
    log(f"wrote {output} and its -first and -second files")


if __name__ == "__main__":
    main()
