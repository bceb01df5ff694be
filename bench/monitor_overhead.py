"""Benchmark: ``ReliabilityMonitor.score`` against the plain answering forward on the same batch.

Plain = what :func:`vrp.scoring.predict` does per batch: encode, one forward with the logits of the
last position, the answer readouts. Monitor = :meth:`ReliabilityMonitor.score_batch`: the same,
plus a forward hook on the probe's layer and one standardise + dot product per question. The two
run interleaved on the same batch (``--repeats`` times after ``--warmup``); the medians compare.

With ``--monitor DIR`` it times an exported bundle and its model; otherwise a random-init tiny
model of the given size (``--family``, ``--hidden-size``, ``--layers``, ``--image-size``) with a
random probe at its middle layer (the overhead does not depend on the probe's values).

    .venv/bin/python bench/monitor_overhead.py --monitor results/monitor/llava/synthetic
    .venv/bin/python bench/monitor_overhead.py --hidden-size 512 --layers 8 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def random_monitor(args):
    import torch

    from vrp.adapters import get_adapter_class
    from vrp.benchmark.synthetic import vocabulary
    from vrp.monitor import Calibrator, LinearProbe, ReliabilityMonitor, model_identity
    from vrp.zoo.tokenizer import build_word_tokenizer, template_words

    tokenizer = build_word_tokenizer(vocabulary(), template_words())
    tiny = {
        "hidden_size": args.hidden_size,
        "intermediate_size": 2 * args.hidden_size,
        "num_hidden_layers": args.layers,
        "image_size": args.image_size,
    }
    adapter = get_adapter_class(args.family).build_tiny(tokenizer, tiny, seed=0)
    adapter.model.to(args.device)
    rng = np.random.default_rng(0)
    d = adapter.hidden_size
    probe = LinearProbe(np.zeros(d), np.ones(d), rng.normal(size=d) / np.sqrt(d), 0.0)
    card = {
        "layer": args.layers // 2,
        "candidates": {"presence": ["no", "yes"]},
        "model": model_identity(adapter, {"path": "random-init", "dtype": "float32"}),
        "prompt_template": adapter.prompt_template,
    }
    torch.manual_seed(0)
    return ReliabilityMonitor(adapter, card, probe, Calibrator("platt", platt=np.array([1.0, 0.0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitor", help="an exported bundle (results/monitor/<model>/<dataset>)")
    parser.add_argument("--family", default="llava")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from vrp.benchmark.images import decode_images
    from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split
    from vrp.monitor import ReliabilityMonitor
    from vrp.scoring import score_batch

    torch.set_num_threads(args.threads)
    monitor = (
        ReliabilityMonitor.load(args.monitor, device=args.device)
        if args.monitor
        else random_monitor(args)
    )
    adapter = monitor.adapter
    questions = generate_split(
        SyntheticBenchmarkConfig(n_train_images=1, n_eval_images=8, image_size=args.image_size),
        "eval",
    )
    batch = questions[questions["task"] == "presence"].head(args.batch_size)
    images, texts, tasks = (
        decode_images(batch["image"]),
        batch["question"].tolist(),
        batch["task"].tolist(),
    )

    @torch.no_grad()
    def plain():
        # the same answering path as the monitor (a full pass), without the probe hook
        return score_batch(
            adapter,
            monitor.index,
            images,
            texts,
            tasks,
            [monitor.candidates[t][0] for t in tasks],
            share_prefix=False,
        )

    def monitored():
        return monitor.score_batch(images, texts, tasks)

    def timed(fn):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(args.warmup):
        plain(), monitored()
    times = {"plain": [], "monitor": []}
    # interleaved, alternating which goes first, so drifting load and cache effects hit both alike
    for repeat in range(args.repeats):
        order = ("plain", "monitor") if repeat % 2 == 0 else ("monitor", "plain")
        for name in order:
            times[name].append(timed(plain if name == "plain" else monitored))
    assert (plain()["prediction"].to_numpy() == monitored()["answer"].to_numpy()).all()
    median = {k: statistics.median(v) for k, v in times.items()}
    # paired per-repeat ratios are robust to load drift between repeats
    ratios = [m / p - 1 for m, p in zip(times["monitor"], times["plain"])]
    print(
        json.dumps(
            {
                "model": repr(adapter),
                "device": args.device,
                "threads": args.threads,
                "batch_size": len(texts),
                "layer": monitor.layer,
                "repeats": args.repeats,
                "plain_median_s": median["plain"],
                "monitor_median_s": median["monitor"],
                "overhead_of_medians_pct": 100 * (median["monitor"] / median["plain"] - 1),
                "overhead_median_paired_pct": 100 * statistics.median(ratios),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
