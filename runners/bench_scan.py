"""The scan benchmark stage: a scan as scan.py runs it, on the local backend or on a local Ray."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

import pipeline as P
from core.images import list_images
from runners.bench_settings import FACES, BenchSettings


def bench_scan(args: BenchSettings) -> Iterator[dict]:
    """A scan as scan.py runs it, on the local backend or on a local Ray (`backend`), so Ray's overhead is a number.

    The same files either way: the first `images` files of ../shared/data/faces (every class, sorted), or seeded
    256² noise written to a temporary folder when the face set is absent. The pipeline is the configured one with
    the weights on disk (never downloading). The clock runs from building the pipeline to the last verdict, so
    start-up counts (for Ray: Ray itself, then each actor importing torch and loading the models; on Ray the
    actors keep working while the driver waits for the first verdict, so there is no fair "after start-up" rate).
    Each actor has one CPU and one torch thread.
    """
    import tempfile
    import time

    import numpy as np
    from PIL import Image

    from runners.ray_backend import RayOptions, analyze_on_ray

    folders = sorted(p for p in FACES.iterdir() if p.is_dir()) if FACES.is_dir() else []
    files = [str(p) for folder in folders for p in list_images(folder)][:args.images]
    with tempfile.TemporaryDirectory(prefix="gantrace-bench-scan-") as temp:
        source = f"the first {len(files)} images of {FACES}"
        if len(files) < args.images:
            rng = np.random.default_rng(0)
            files = [str(Path(temp) / f"noise-{index:04d}.png") for index in range(args.images)]
            for file in files:
                Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(file)
            source = f"{len(files)} seeded 256² noise images (the face set was not found)"
        for dtype in args.dtypes:
            batch_size = max(args.batch_sizes)
            start = time.perf_counter()
            pipe = P.Pipeline(replace(args.pipeline, device=args.device, dtype=dtype, batch_size=batch_size,
                                      download=False))
            branches = sorted(status.branch for status in pipe.load_all() if status.ready)
            if args.backend == "ray":
                results = analyze_on_ray(pipe, files, RayOptions(actors=args.ray_actors))
            else:
                results = pipe.analyze_iter(files, names=files)
            count, first = 0, None
            for _ in results:
                count += 1
                first = first or time.perf_counter()
            end = time.perf_counter()
            yield {"stage": "scan", "backend": args.backend, "dtype": dtype, "batch_size": batch_size,
                   "images": count, "images_per_s": round(count / (end - start), 3),
                   "seconds_to_first_verdict": round(first - start, 1), "seconds": round(end - start, 1),
                   "branches_run": branches, "ray_actors": args.ray_actors if args.backend == "ray" else None,
                   "threads": torch.get_num_threads(), "source": source}
