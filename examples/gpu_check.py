"""Every measurement the training speed needs from a GPU machine, in one prepared run that
writes one JSON file.

    PYTHONPATH=. python3 examples/gpu_check.py --out $OUT            # on the GPU machine
    python examples/gpu_check.py --smoke --device cpu --out /tmp/g    # here: same code, tiny

It needs only torch, torchvision, numpy, safetensors, rich and scikit-learn (what the device
image has), not polars, Textual or Altair, so it runs from the source tree without installing
signscope. Steps, each timed, each recorded even when a later one fails:

1. ``env``: torch and CUDA versions, the card, its memory.
2. ``bench``: ``signscope bench`` for ResNet18 at batch 256 on synthetic 3x32x32 data, bf16,
   density 0.2: the signscope loop against the DataLoader reference loop (CUDA events), with
   the profiler's top operators of the signscope loop.
3. ``epochs``: ``signscope train`` itself on 50,000 synthetic images (a CIFAR-10 epoch) for
   one dense level and one pruned level of 2 epochs each; the per-epoch seconds come from
   the run's own log, masking and evaluation included. This checks the CUDA training path end
   to end: the run must have the files SPEC section 2 names and the density 0.8 at level 1.
4. ``imagenet``: the streamed ImageNet path (trainers/datasets/imagenet.py: DataLoader
   workers, pinned memory, uint8 to the device) on a small ImageFolder tree of JPEGs written
   here, one level of ResNet18 with the ImageNet stem at 224x224: images/s of a whole epoch,
   evaluation included.
5. ``bench_compile``: step 2 with ``--compile``, last because compiling takes longest.

The summary printed at the end is what goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _env(device: str) -> dict:
    import torch

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(
            card=props.name,
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
        )
    return out


def _bench(device: str, smoke: bool, compile: bool) -> dict:
    from trainers.bench import BenchConfig, run_bench

    cfg = BenchConfig(
        model="convnet" if smoke else "resnet18",
        batch_size=8 if smoke else 256,
        device=device,
        compile=compile,
        steps=2 if smoke else 50,
        warmup=1 if smoke else 10,
        workers=0 if smoke else 8,
        profile=not compile,
    ).validate()
    return run_bench(cfg)


def _epochs(device: str, smoke: bool, out: Path) -> dict:
    from signscope.runformat import read_manifest
    from trainers.config import resolve_config
    from trainers.train import train

    images = (64, 32) if smoke else (50_000, 10_000)
    cfg = resolve_config(
        "cifar10-resnet18",
        {
            "dataset": "synthetic",
            "synthetic_shape": (3, 32, 32),
            "synthetic_size": images,
            "model": "convnet" if smoke else "resnet18",
            "device": device,
            "levels": 2,
            "epochs": 2,
            "lr_warmup_epochs": 0,
            "rewind_epoch": 1,
            "batch_size": 16 if smoke else 256,
        },
    )
    run = out / "run-resnet18-synthetic"
    started = time.perf_counter()
    train(cfg, run, force=True)
    wall = time.perf_counter() - started
    manifest = read_manifest(run)
    files = sorted(p.name for p in run.iterdir())
    levels = manifest.get("levels", [])
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    return {
        "wall_s": round(wall, 2),
        "files": files,
        "levels": levels,
        "density_level1": levels[1].get("density") if len(levels) > 1 else None,
        "epoch_seconds": [(e["level"], e["epoch"], e["seconds"]) for e in epochs],
    }


def _imagenet(device: str, smoke: bool, out: Path) -> dict:
    import numpy as np
    from PIL import Image

    from signscope.runformat import read_manifest
    from trainers.config import resolve_config
    from trainers.train import train

    classes, per_class = (2, 3) if smoke else (10, 200)
    root = out / "imagenet-tree"
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(1, per_class // 4))):
        for c in range(classes):
            folder = root / "imagenet" / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                size = (int(rng.integers(200, 500)), int(rng.integers(200, 500)))
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                    folder / f"{i}.JPEG", quality=85
                )
    cfg = resolve_config(
        "imagenet-resnet50",
        {
            "data_root": str(root),
            "model": "convnet" if smoke else "resnet18",
            "device": device,
            "levels": 1,
            "epochs": 1,
            "lr_warmup_epochs": 0,
            "rewind_epoch": 0,
            "batch_size": 4 if smoke else 256,
        },
    )
    run = out / "run-imagenet-stream"
    started = time.perf_counter()
    train(cfg, run, force=True)
    wall = time.perf_counter() - started
    level = read_manifest(run)["levels"][0]
    images = classes * per_class
    return {
        "images": images,
        "wall_s": round(wall, 2),
        "epoch_s": level.get("seconds"),
        "images_per_s": round(images / level["seconds"], 1) if level.get("seconds") else None,
        "test_acc": level.get("test_acc"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to test the script")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    steps = [
        ("env", lambda: _env(args.device)),
        ("bench", lambda: _bench(args.device, args.smoke, compile=False)),
        ("epochs", lambda: _epochs(args.device, args.smoke, args.out)),
        ("imagenet", lambda: _imagenet(args.device, args.smoke, args.out)),
    ]
    if not args.skip_compile:
        steps.append(("bench_compile", lambda: _bench(args.device, args.smoke, compile=True)))
    for name, step in steps:
        started = time.perf_counter()
        try:
            report[name] = step()
        except Exception:  # keep going: the other steps' numbers are still worth having
            report[name] = {"error": traceback.format_exc()}
        report[name + "_seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
        print(f"{name}: {report[name + '_seconds']} s", flush=True)
    print(
        json.dumps(
            {k: v for k, v in report.items() if not k.endswith("_seconds")}, indent=1, default=str
        )[:6000]
    )
    return 1 if any(isinstance(v, dict) and "error" in v for v in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
