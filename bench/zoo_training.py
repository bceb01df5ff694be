"""Benchmark: where one tiny-zoo training step spends its CPU time (one thread, as the train jobs run).

Builds each family's tiny model as the ``zoo_train`` rule does (the demo config's tiny settings, the
workflow's word-level tokenizer) and times, per step, with ``time.process_time``:

* ``batch``: drawing the rows and ``adapter.encode_for_training`` (the processor's resize /
  normalise and tokenisation of the step's 32 rows; images are decoded once before the loop,
  as in :func:`vrp.zoo.train.train_adapter`),
* ``forward`` (under the configured ``train.autocast``), ``backward``, ``optimizer`` (gradient clipping + AdamW + schedule step).

and once: decoding every training image, building the model. The last column projects the CPU
seconds of the configured step budget (``models.<name>.train.steps``).

Needs the demo's train split and tokenizer:

    .venv/bin/snakemake --cores 1 results/data/synthetic/train.parquet results/zoo/tokenizer
    .venv/bin/python bench/zoo_training.py                      # all three families, 20 steps
    .venv/bin/python bench/zoo_training.py --model qwen2vl --steps 40
    .venv/bin/python bench/zoo_training.py --autocast none bfloat16   # float32 vs mixed precision
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def bench_model(
    name: str,
    model: dict,
    train,
    tokenizer,
    steps: int,
    warmup: int,
    seed: int,
    autocast: str | None = None,
) -> dict:
    import torch

    from vrp.adapters import get_adapter_class
    from vrp.benchmark.images import decode_images
    from vrp.zoo.train import TrainConfig, autocast_context, lr_multiplier, row_probabilities

    settings = dict(model["train"])
    if autocast is not None:
        settings["autocast"] = autocast
    config = TrainConfig.from_dict(settings)
    start = time.process_time()
    adapter = get_adapter_class(model["family"]).build_tiny(
        tokenizer, dict(model["tiny"]), seed=seed
    )
    adapter.post_prompt = ""
    build_s = time.process_time() - start
    start = time.process_time()
    images = decode_images(train["image"])
    decode_s = time.process_time() - start
    questions, answers = train["question"].tolist(), train["answer"].tolist()

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probabilities = row_probabilities(train["task"], config.task_weights)
    net = adapter.model
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, config))
    phases = {"batch": [], "forward": [], "backward": [], "optimizer": []}
    lengths = []
    for step in range(warmup + steps):
        t0 = time.process_time()
        rows = rng.choice(len(train), size=config.batch_size, replace=False, p=probabilities)
        batch = adapter.encode_for_training(
            [images[i] for i in rows], [questions[i] for i in rows], [answers[i] for i in rows]
        )
        t1 = time.process_time()
        with autocast_context(config, adapter.device):
            loss = net(**batch).loss
        t2 = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.process_time()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        t4 = time.process_time()
        if step >= warmup:
            for key, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[key].append(seconds)
            lengths.append(int(batch["input_ids"].shape[1]))
    per_step = {key: statistics.mean(values) for key, values in phases.items()}
    total = sum(per_step.values())
    return {
        "model": name,
        "family": model["family"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "batch_size": config.batch_size,
        "autocast": config.autocast,
        "mean_sequence_length": statistics.mean(lengths),
        "decode_train_images_s": round(decode_s, 2),
        "build_model_s": round(build_s, 2),
        **{f"{key}_s": round(value, 4) for key, value in per_step.items()},
        "step_s": round(total, 4),
        **{f"{key}_share": round(value / total, 3) for key, value in per_step.items()},
        "configured_steps": config.steps,
        "projected_train_s": round(config.steps * total, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default="config/config.yaml", help="workflow config (models, seed)"
    )
    parser.add_argument(
        "--model", nargs="+", help="model names of the config (default: every tiny model)"
    )
    parser.add_argument("--train", default="results/data/synthetic/train.parquet")
    parser.add_argument("--tokenizer", default="results/zoo/tokenizer")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument(
        "--autocast",
        nargs="+",
        choices=["bfloat16", "none"],
        help="training precision(s) to time (default: each model's configured one)",
    )
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from vrp.benchmark.schema import read_questions
    from vrp.config import load_config

    torch.set_num_threads(1)  # runtime.threads of the train jobs
    for path in (args.train, args.tokenizer):
        if not Path(path).exists():
            raise SystemExit(
                f"{path} does not exist; build it first: .venv/bin/snakemake --cores 1 "
                f"{args.train} {args.tokenizer}"
            )
    # schema-defaulted, as the workflow sees it (batch size, lr, ... where the config names none)
    config = load_config(
        args.config, Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
    )
    models = {name: m for name, m in config["models"].items() if m["source"] == "tiny"}
    names = args.model or sorted(models)
    unknown = sorted(set(names) - set(models))
    if unknown:
        raise SystemExit(f"no tiny model(s) {unknown} in {args.config}; it has {sorted(models)}")
    train = read_questions(args.train)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    for name in names:
        for autocast in args.autocast or [None]:
            result = bench_model(
                name,
                models[name],
                train,
                tokenizer,
                args.steps,
                args.warmup,
                config["seed"],
                autocast,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
