"""Benchmark: peak resident memory of the probe job's layer loop, whole-array reads vs layer reads.

The probe job (workflow/scripts/probes_layers.py -> vrp.analysis.probes.layer_probes) fits one
probe per layer on ``hidden[:, layer, :]``. Before, the script read ``hidden`` with
``load_array``, which concatenates the shards into one in-RAM array (n x (L+1) x d floats, and
the shards' mapped pages on top while concatenating); now it reads a lazy
``vrp.shards.open_array`` view, and each layer is copied out of the shards' memory maps on its own.

This writes a synthetic ``hidden`` of POPE's size on LLaVA-1.5 (9,000 x 33 x 4096 float32,
4.9 GB) as NPY shards of 256 questions with a manifest, then runs the layer loop once per mode,
each in its own subprocess so that ru_maxrss is that mode's peak. The per-layer work stands in
for the fit: the float64 standardisation every probe pipeline starts with (the fit's own memory
is the same in both modes, and fitting 99 probes on 4096 features would take hours on a CPU).

    .venv/bin/python bench/probe_memory.py --dir /tmp/vrp-probe-bench          # write + measure
    .venv/bin/python bench/probe_memory.py --dir /tmp/vrp-probe-bench --keep   # keep the shards
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_shards(folder: Path, n: int, layers: int, d: int, shard_size: int) -> Path:
    """Write a synthetic (n, layers, d) float32 ``hidden`` as shards + a vrp manifest."""
    from vrp.io import write_json

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards, sizes = [], []
    for k, start in enumerate(range(0, n, shard_size)):
        rows = min(shard_size, n - start)
        path = folder / "shards" / f"{k:05d}" / "hidden.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.standard_normal((rows, layers, d), dtype=np.float32))
        shards.append(str(path.relative_to(folder)))
        sizes.append(path.stat().st_size)
    manifest = {
        "arrays": {
            "hidden": {
                "shape": [n, layers, d],
                "dtype": "float32",
                "shards": shards,
                "bytes": sizes,
            }
        }
    }
    write_json(manifest, folder / "manifest.json")
    return folder / "manifest.json"


def layer_loop(manifest: str, mode: str) -> dict:
    """The probe job's read pattern; returns peak RSS and time."""
    from vrp.shards import load_array, open_array

    start = time.perf_counter()
    hidden = load_array(manifest, "hidden") if mode == "before" else open_array(manifest, "hidden")
    checksum = 0.0
    for layer in range(hidden.shape[1]):
        x = np.asarray(hidden[:, layer, :], dtype=np.float64)  # what layer_probes hands each fit
        z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)
        checksum += float(x[:, :8].sum()) + float(z[:, 0] @ z[:, 1])
    return {
        "mode": mode,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": time.perf_counter() - start,
        "checksum": checksum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default="/tmp/vrp-probe-bench")
    parser.add_argument("--n", type=int, default=9000)
    parser.add_argument("--layers", type=int, default=33)
    parser.add_argument("--d", type=int, default=4096)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the shards after measuring")
    parser.add_argument("--run", nargs=2, metavar=("MANIFEST", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(layer_loop(*args.run)))
        return
    folder = Path(args.dir)
    start = time.perf_counter()
    manifest = write_shards(folder, args.n, args.layers, args.d, args.shard_size)
    size = sum(p.stat().st_size for p in folder.rglob("*.npy"))
    print(
        f"wrote {size / 1e9:.2f} GB of shards ({args.n} x {args.layers} x {args.d} float32) "
        f"in {time.perf_counter() - start:.0f} s"
    )
    results = []
    for mode in ("after", "before"):
        out = subprocess.run(
            [sys.executable, __file__, "--run", str(manifest), mode],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout))
        print(json.dumps(results[-1]))
    assert abs(results[0]["checksum"] - results[1]["checksum"]) < 1e-6 * max(
        1.0, abs(results[0]["checksum"])
    )
    print("| read | peak RSS (MB) | time (s) |\n|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} |")
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
