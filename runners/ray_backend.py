"""Run GANTrace's batch jobs on Ray Data: many files through actors that load the models once, results in order.

Why this shape:
* The unit of work is the local backend's own unit (a batch of `batch_size` files for scan, a whole shard for
  extract_latents), so every model sees exactly the batches it sees locally and the outputs match to the bit.
* Ray Data carries the units through an actor pool (`map_batches` with a callable class, a fixed number of
  actors, GPUs per actor), with streaming execution and back-pressure, and returns them in input order
  (`preserve_order`). The driver alone writes, through the scripts' own writers, so resume, failure rows and
  failures.json behave as locally.
* A node that cannot run what the driver runs (a weight it cannot get, a different encoder) fails its actor with
  one line naming the node and the registry's message; the driver raises it as `RayWorkerError`.

Ray is optional (`pip install "gantrace[ray]"`); it is imported only when a job starts. The files must be
readable at the same path on every node (a shared filesystem or the same mount).
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import socket
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline import BranchStatus, Pipeline, Result

LOCAL = "local"


class RayWorkerError(RuntimeError):
    """A Ray actor could not start its work (or Ray itself is missing); the message is one line for the user."""


@dataclass(frozen=True)
class RayOptions:
    """Where to run and how wide: `address` None or "local" starts a Ray on this machine, "auto" joins the
    cluster this machine belongs to, anything else is a cluster address (ray://host:10001 or host:6379)."""

    address: str | None = None
    actors: int = 2
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"--ray-actors must be at least 1, got {self.actors}")
        if self.gpus_per_actor < 0 or self.cpus_per_actor <= 0:
            raise ValueError(f"--ray-gpus-per-actor must be >= 0 and --ray-cpus-per-actor > 0, got "
                             f"{self.gpus_per_actor} and {self.cpus_per_actor}")


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The --ray flag group both batch scripts share."""
    group = parser.add_argument_group("Ray (optional; pip install \"gantrace[ray]\")")
    group.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                       help="run on Ray: no value starts a local Ray, 'auto' joins the running cluster, an address "
                            "(ray://head:10001) connects to one; outputs are the same as without --ray")
    group.add_argument("--ray-actors", type=int, default=2, help="actors, each holding the models once (default 2)")
    group.add_argument("--ray-gpus-per-actor", type=float, default=0.0, help="GPUs per actor (default 0)")
    group.add_argument("--ray-cpus-per-actor", type=float, default=1.0, help="CPUs per actor (default 1)")


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The parsed --ray flags, or None when the job runs locally."""
    if args.ray is None:
        return None
    return RayOptions(address=None if args.ray == LOCAL else args.ray, actors=args.ray_actors,
                      gpus_per_actor=args.ray_gpus_per_actor, cpus_per_actor=args.ray_cpus_per_actor)


@contextmanager
def ray_session(options: RayOptions) -> Iterator[None]:
    """Connect (or start a local Ray) for one job and shut it down after, however the job ends (Ctrl-C too).

    A Ray this process already initialised is used as it is and left running: its owner shuts it down.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield
        return
    if options.address is None:
        # Local workers import exactly what this process imports (the scripts' folder, a PYTHONPATH checkout).
        path = os.pathsep.join(entry for entry in sys.path if entry)
        ray.init(num_cpus=options.local_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    else:
        ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def map_ordered(make_worker: Callable[[], Callable[[Any], Any]], tasks: Sequence[Any], options: RayOptions,
                should_stop: Callable[[], bool] | None = None) -> Iterator[Any]:
    """`make_worker()(task)` for every task on a pool of actors, yielded in task order as results arrive.

    Each actor calls `make_worker` once (that is where models load) and then its worker on one task at a time.
    `should_stop` is asked after every result; when it says True the job ends there (the actors are released,
    later results are dropped) and a resumed run redoes them.
    """
    ray = _import_ray()
    if not tasks:
        return
    with ray_session(options):
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        # Tasks and results travel as pickled bytes (one binary column each): Arrow cannot hold a Verdict or a dict
        # of arrays, and both ends are this program's own processes (Ray pickles its arguments the same way).
        rows = [{"index": index, "task": pickle.dumps(task)} for index, task in enumerate(tasks)]
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), _MAX_BLOCKS)).map_batches(
            _Actor, fn_constructor_args=(make_worker,), batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=options.actors), num_cpus=options.cpus_per_actor,
            num_gpus=options.gpus_per_actor, zero_copy_batch=True)
        expected = 0
        try:
            for row in dataset.iter_rows():
                if int(row["index"]) != expected:
                    raise RuntimeError(f"Ray returned task {int(row['index'])} where task {expected} was due")
                expected += 1
                yield pickle.loads(row["output"])
                if should_stop is not None and should_stop():
                    return
        except ray.exceptions.RayError as err:
            raise RayWorkerError(_worker_message(err)) from None


class _Actor:
    """Ray Data's callable class: built once per actor, then called with one task per batch."""

    def __init__(self, make_worker: Callable[[], Callable[[Any], Any]]):
        try:
            self.work = make_worker()
        except Exception as err:  # noqa: BLE001 - any setup failure becomes the one line the driver prints
            raise RayWorkerError(f"{_SETUP_FAILED} {socket.gethostname()}: {err}") from None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        outputs = [pickle.dumps(self.work(pickle.loads(task))) for task in batch["task"]]
        return {"index": batch["index"], "output": outputs}


_SETUP_FAILED = "a Ray actor could not start on"
# One task per block (so any idle actor can take it) up to this many; beyond, neighbouring tasks share a block.
_MAX_BLOCKS = 10_000


def _worker_message(err: Exception) -> str:
    """The actor's own one-line message out of Ray's wrapped traceback, or Ray's first line."""
    text = str(err)
    start = text.rfind(_SETUP_FAILED)
    if start >= 0:
        return text[start:].splitlines()[0]
    return f"Ray job failed: {text.strip().splitlines()[0] if text.strip() else type(err).__name__}"


class PipelineWorker:
    """A Pipeline on one actor, loaded once, that must run exactly the branches the driver's pipeline runs.

    A node that lacks a weight the driver has (or has one the driver lacks) would give different verdicts, so
    the actor fails instead with the node's own reasons (the registry's one-line message for a missing weight).
    """

    def __init__(self, make_pipeline: Callable[[], Pipeline], ready: Collection[str], with_pictures: bool = False):
        self.pipeline = make_pipeline()
        self.with_pictures = with_pictures
        statuses = self.pipeline.load_all()
        differ = [s for s in statuses if bool(s.ready) != (s.branch in ready)]
        if differ:
            raise RayWorkerError("; ".join(_difference(s) for s in differ))

    def __call__(self, files: list[str]) -> list[Result]:
        return self.pipeline.analyze(files, names=files, with_pictures=self.with_pictures)


def _difference(status: BranchStatus) -> str:
    if status.ready:
        return f"{status.branch} runs here but not on the driver (the driver decides which branches run)"
    return f"{status.branch} cannot run here: {status.reason}"


def analyze_on_ray(pipe: Pipeline, files: Sequence[str], options: RayOptions, with_pictures: bool = False,
                   should_stop: Callable[[], bool] | None = None) -> Iterator[Result]:
    """Verdicts (or Failures) for `files` in order, computed on Ray in `pipe`'s batches, named as given.

    Each actor builds its own pipeline from `pipe.config` (the registered branches, as the scripts build theirs)
    and must load exactly the branches `pipe` loaded on the driver (`Pipeline.load_all`).
    """
    ready = frozenset(status.branch for status in pipe.status() if status.ready)
    size = pipe.config.batch_size
    chunks = [list(files[start:start + size]) for start in range(0, len(files), size)]
    worker = partial(PipelineWorker, partial(Pipeline, pipe.config), ready, with_pictures)
    for results in map_ordered(worker, chunks, options, should_stop):
        yield from results


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part we use
    except ImportError as err:
        raise RayWorkerError(f"--ray needs Ray Data, which is not installed ({err}); install it with: "
                             "pip install \"gantrace[ray]\" (or pip install -r requirements-ray.txt)") from None
    return ray
