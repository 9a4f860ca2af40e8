"""Issue 13's contracts: the int8 precision and its fidelity bound, the thread budget, and the pipeline's lanes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import pytest
import torch
from open_clip.transformer import QuickGELU
from torch import nn

import pipeline as P
from core.device import Precision, select_precision, torch_thread_count, torch_threads
from core.int8 import Int8Conv2d, Int8Linear
from pipeline.evidence import BranchEvidence
from detector.clip_probe import TINY_MODEL_NAME, ClipProbe, ClipProbeConfig, SelfAttention, _fuse_mlp_int8
from encoder.e4e import E4EConfig, Encoder4Editing
from pipeline.lanes import parts as lanes_parts
from tiny_models import CentreFaceFinder, png_bytes, tiny_branches

FP32 = select_precision("cpu", "fp32")
INT8 = select_precision("cpu", "int8")


def test_int8_is_fp32_activations_with_quantized_weights(monkeypatch):
    assert INT8.quantized and INT8.dtype == torch.float32 and INT8.dtype_name == "int8"
    monkeypatch.setenv("GANTRACE_DTYPE", "int8")
    assert select_precision("cpu") == INT8


def test_int8_off_the_cpu_is_refused():
    with pytest.raises(ValueError, match="CPU"):
        Precision(torch.device("cuda"), torch.float32, quantized=True)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_picks_bf16_where_the_cpu_has_it_and_never_int8(monkeypatch, has_bf16):
    import core.device

    monkeypatch.delenv("GANTRACE_DTYPE", raising=False)
    monkeypatch.setattr(core.device, "cpu_supports_bf16", lambda: has_bf16)
    precision = select_precision("cpu", "auto")
    assert not precision.quantized
    assert precision.dtype == (torch.bfloat16 if has_bf16 else torch.float32)


@pytest.mark.parametrize("activation, fused", [(QuickGELU(), "silu"), (nn.GELU(), "gelu")])
def test_int8_mlp_runs_its_activation_inside_the_first_layer_and_matches_fp32(activation, fused):
    torch.manual_seed(4)
    mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(64, 256), gelu=activation, c_proj=nn.Linear(256, 64))).eval()
    tokens = torch.randn(3, 10, 64)
    with torch.inference_mode():
        expected = mlp(tokens)
        _fuse_mlp_int8(mlp)
        found = mlp(tokens)
    assert isinstance(mlp.gelu, nn.Identity) and mlp.c_fc.activation == fused
    assert ((found - expected).abs().mean() / expected.abs().mean()).item() < 0.03


def test_self_attention_computes_what_multihead_attention_computes():
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(64, 4, batch_first=True).eval()
    tokens = torch.randn(2, 9, 64)
    with torch.inference_mode():
        expected = attention(tokens, tokens, tokens, need_weights=False)[0]
        found = SelfAttention(attention)(tokens, tokens, tokens)[0]
    assert torch.allclose(found, expected, atol=1e-5)


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random pictures (noise blurred by upsampling): closer to photo statistics than white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 28, 28, 3)).astype(np.uint8)
    return [np.kron(image, np.ones((8, 8, 1), np.uint8)) for image in small]


def test_int8_clip_quantizes_every_linear_and_stays_close_to_fp32():
    reference = ClipProbe.random_init(ClipProbeConfig.tiny(), precision=FP32)
    quantized = ClipProbe.random_init(ClipProbeConfig.tiny(), precision=INT8)
    assert not any(type(m) is nn.Linear for m in quantized.visual.modules())
    assert not any(isinstance(m, nn.MultiheadAttention) for m in quantized.visual.modules())
    images = _images(6)
    expected, found = reference.features(images), quantized.features(images)
    cosine = (expected * found).sum(1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(found, axis=1)
    assert cosine.min() > 0.9999  # measured 0.99996
    logits_fp32, logits_int8 = reference.logits_from_features(expected), quantized.logits_from_features(found)
    assert np.abs(logits_int8 - logits_fp32).max() < 0.015  # measured 0.0055; the logits here are about 0.6


def test_int8_e4e_quantizes_every_conv_but_the_gates_and_keeps_wplus_within_its_scale():
    reference = Encoder4Editing.random_init(E4EConfig.tiny(), seed=0, precision=FP32)
    quantized = Encoder4Editing.random_init(E4EConfig.tiny(), seed=0, precision=INT8)
    int8 = {name for name, m in quantized.named_modules() if isinstance(m, Int8Conv2d)}
    convs = {name for name, m in reference.named_modules() if type(m) is nn.Conv2d}
    gates = {name for name in convs if name.endswith((".fc1", ".fc2"))}
    assert int8 == convs - gates and gates and "input_layer.0" in int8 and "latlayer1" in int8
    assert all(type(m) is nn.Conv2d for name, m in quantized.named_modules() if name in gates)
    faces = [np.asarray(image[:224, :224]) for image in _images(6, seed=1)]
    expected, found = reference.encode(faces), quantized.encode(faces)
    # Against the W+ scale, not its spread across faces: a random encoder maps every face to nearly the same W+
    scale = expected.std()
    assert np.abs(found - expected).mean() < 0.01 * scale  # measured 0.0026
    assert np.abs(found - expected).max() < 0.04 * scale  # measured 0.011


def test_torch_threads_sets_the_calling_thread_and_restores_it():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert torch_thread_count() == before


class Rendezvous:
    """An image-level branch that meets the face finder at a barrier: it only gets through if both run at once."""

    name = "rendezvous"
    level = "image"
    models: dict = {}
    warning = None
    skill = None

    def __init__(self, barrier: threading.Barrier):
        self.barrier = barrier
        self.threads: list[int] = []

    def required_weights(self, context) -> list[str]:
        return []

    def load(self, context) -> None:
        return None

    def run(self, inputs):
        self.threads.append(torch.get_num_threads())
        self.barrier.wait()
        return [BranchEvidence({"real": 0.5, "fake": 0.5})] * len(inputs)


class RendezvousFaceFinder(CentreFaceFinder):
    def __init__(self, barrier: threading.Barrier):
        super().__init__()
        self.barrier = barrier

    def find(self, images, names):
        self.barrier.wait()
        return super().find(images, names)


class Recorder:
    """An image-level branch that takes `seconds` per image and notes when it ran among the other jobs."""

    level = "image"
    models: dict = {}
    warning = None
    skill = None

    def __init__(self, name: str, seconds: float, log: list[str]):
        self.name, self.seconds, self.log = name, seconds, log

    def required_weights(self, context) -> list[str]:
        return []

    def load(self, context) -> None:
        return None

    def run(self, inputs):
        self.log.append(self.name)
        time.sleep(self.seconds * len(inputs))
        return [BranchEvidence({"real": 0.5, "fake": 0.5})] * len(inputs)


class LoggingFaceFinder(CentreFaceFinder):
    def __init__(self, log: list[str]):
        super().__init__()
        self.log = log

    def find(self, images, names):
        self.log.append("faces")
        return super().find(images, names)


def test_lanes_run_the_face_chain_beside_the_image_branches_within_the_thread_budget(tiny_dir):
    barrier = threading.Barrier(2, timeout=30)
    rendezvous = Rendezvous(barrier)
    branches = tiny_branches(tiny_dir, fingerprint_net=rendezvous)
    config = P.PipelineConfig(device="cpu", dtype="fp32", batch_size=1, lanes=2)
    with torch_threads(4):  # whatever an earlier test left: 4 threads, 2 lanes of 2
        verdict = P.Pipeline(config, branches, RendezvousFaceFinder(barrier)).analyze_one(png_bytes(_images(1)[0]))
        assert torch.get_num_threads() == 4
    assert isinstance(verdict, P.Verdict)
    assert verdict.evidence["fingerprint_net"]["probabilities"] is not None  # the barrier was passed, not broken
    assert verdict.faces
    assert rendezvous.threads == [2]


def test_the_slowest_kind_of_job_goes_first_once_its_cost_is_known(tiny_dir):
    log: list[str] = []
    # 1 s per image: slower than the tiny face chain even on a loaded machine, so the order cannot flip with load
    branches = tiny_branches(tiny_dir, fingerprint_net=Recorder("fingerprint_net", 1.0, log),
                             spectral_dct=Recorder("spectral_dct", 0.0, log))
    config = P.PipelineConfig(device="cpu", dtype="fp32", batch_size=2, lanes=1, disabled_branches=("clip_probe",))
    pipe = P.Pipeline(config, branches, LoggingFaceFinder(log))
    sources = [png_bytes(image) for image in _images(2, seed=3)]
    pipe.analyze(sources)
    assert log == ["faces", "fingerprint_net", "spectral_dct"]  # nothing measured yet: face chain, then registry
    log.clear()
    pipe.analyze(sources)
    assert log[0] == "fingerprint_net" and sorted(log) == ["faces", "fingerprint_net", "spectral_dct"]


@pytest.mark.parametrize("count, lanes, sizes", [(8, 2, [4, 4]), (5, 2, [3, 2]), (1, 2, [1]), (3, 1, [3]),
                                                 (2, 4, [1, 1])])
def test_a_batch_is_cut_into_near_equal_contiguous_parts(count, lanes, sizes):
    items = list(range(count))
    parts = lanes_parts(items, lanes)
    assert [len(part) for part in parts] == sizes
    assert [item for part in parts for item in part] == items


def test_one_lane_and_two_lanes_give_the_same_verdicts(tiny_dir):
    sources = [png_bytes(image) for image in _images(3, seed=2)]
    results = []
    for lanes in (1, 2):
        config = P.PipelineConfig(device="cpu", dtype="fp32", batch_size=3, lanes=lanes)
        with torch_threads(2):  # two lanes need two threads to exist
            verdicts = P.Pipeline(config, tiny_branches(tiny_dir), CentreFaceFinder()).analyze(sources)
        results.append(verdicts)
    for one, two in zip(*results):  # parts of a batch and thread counts move float sums in the last digits only
        assert (one.label, one.warnings, one.models, len(one.faces)) == (two.label, two.warnings, two.models,
                                                                         len(two.faces))
        assert list(one.evidence) == list(two.evidence)
        assert one.probabilities == pytest.approx(two.probabilities, abs=1e-4)


def test_the_pipeline_benchmark_sets_each_stage_in_the_pipeline_beside_it_alone_and_the_bound(tiny_dir):
    from runners.bench_pipeline import measure_pipeline

    config = P.PipelineConfig(device="cpu", dtype="fp32", batch_size=2, lanes=2)
    pipe = P.Pipeline(config, tiny_branches(tiny_dir), CentreFaceFinder())
    with torch_threads(2):
        record, verdicts = measure_pipeline(pipe, [png_bytes(image) for image in _images(2, seed=4)], repeats=1)
    assert len(verdicts) == 2 and record["failures"] == 0
    stages = {"load", "align", *pipe.branches}
    assert set(record["alone_ms"]) == stages and stages <= set(record["in_pipeline_ms"])
    threads = record["stage_threads"]
    assert record["cores"] == 2 and record["lanes"] == 2
    assert all(threads[stage] == 1 for stage in record["alone_ms"])
    core_ms = sum(ms * threads[stage] for stage, ms in record["alone_ms"].items())
    assert record["bound_images_per_s"] == pytest.approx(1000 * record["cores"] / core_ms, rel=1e-2)
    assert record["of_bound"] == pytest.approx(record["images_per_s"] / record["bound_images_per_s"], rel=1e-2)


def test_a_verdict_from_int8_layers_says_so_and_stays_close_to_fp32(monkeypatch, tmp_path):
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the tiny tower in whichever precision the pipeline asks for, so the int8 run really runs int8 layers
    build = ClipProbe.random_init
    monkeypatch.setattr(ClipProbe, "random_init", classmethod(
        lambda cls, config=None, seed=0, precision=None: build(replace(config, model_name=TINY_MODEL_NAME),
                                                             precision=precision)))
    only_clip = ("fingerprint_net", "spectral_dct", "latent_svm")
    image = png_bytes(_images(1, seed=5)[0])
    verdicts, int8_layers = {}, {}
    for dtype in ("fp32", "int8"):
        config = P.PipelineConfig(device="cpu", dtype=dtype, disabled_branches=only_clip, random_weights_ok=True)
        pipe = P.Pipeline(config)
        verdicts[dtype] = pipe.analyze_one(image)
        int8_layers[dtype] = sum(isinstance(m, Int8Linear) for m in pipe.branches["clip_probe"].estimator.modules())
    assert int8_layers["fp32"] == 0 and int8_layers["int8"] > 0
    assert any("clip_probe ran its CLIP Linear layers in int8" in w for w in verdicts["int8"].warnings)
    assert not any("int8" in w for w in verdicts["fp32"].warnings)
    fake = {dtype: verdict.evidence["clip_probe"]["probabilities"]["fake"] for dtype, verdict in verdicts.items()}
    assert fake["int8"] != fake["fp32"]  # int8 rounding moves the last digits: it is not the fp32 model twice
    assert fake["int8"] == pytest.approx(fake["fp32"], abs=0.01)


def test_an_int8_face_verdict_is_the_same_alone_and_in_a_batch_of_8_among_other_faces(tiny_dir):
    """Each sample is quantized on its own range, and its int8 layers' outputs are bit-identical in any batch
    (tests/core/test_int8.py). With one scale per batch, the neighbours moved the int8 CLIP's P(fake) by 6e-4 and the
    latent branch's probabilities by 1.4e-6 here. What is left is fp32 rounding outside the int8 layers (CLIP's
    final projection, e4e's heads, the SVM go through MKL, whose last bits may follow the number of rows and the
    memory's alignment): 6e-8 on CLIP's P(fake), 4e-10 on the latent branch, hence the bounds."""
    face = png_bytes(_images(1, seed=7)[0])
    others = [png_bytes(image) for image in _images(7, seed=8)]
    config = P.PipelineConfig(device="cpu", dtype="int8", batch_size=8, lanes=2)
    pipe = P.Pipeline(config, tiny_branches(tiny_dir, INT8), CentreFaceFinder())
    alone = pipe.analyze([face])[0]
    among = pipe.analyze([*others[:3], face, *others[3:]])[3]
    assert alone.sha256 == among.sha256 and alone.label == among.label
    for branch, bound in (("clip_probe", 1e-6), ("latent_svm", 1e-8)):
        expected = alone.evidence[branch]["probabilities"]
        assert among.evidence[branch]["probabilities"] == pytest.approx(expected, abs=bound)
    assert among.probabilities == pytest.approx(alone.probabilities, abs=1e-6)


@pytest.mark.parametrize("precision", [FP32, INT8], ids=["fp32", "int8"])
def test_the_latency_benchmark_freezes_fp32_models_but_never_int8_ones(precision):
    """A trace would bake the first input's activation scale into every later call of an int8 layer."""
    from types import SimpleNamespace

    from runners.bench_latency import _eager_vs_frozen

    clip = ClipProbe.random_init(ClipProbeConfig.tiny(), precision=precision)
    encoder = Encoder4Editing.random_init(E4EConfig.tiny(), seed=0, precision=precision)
    pipe = SimpleNamespace(precision=precision, face_finder=CentreFaceFinder(),
                           branches={"clip_probe": SimpleNamespace(estimator=clip),
                                     "latent_svm": SimpleNamespace(encoder=encoder)})
    records = list(_eager_vs_frozen(pipe, png_bytes(_images(1, seed=6)[0]), 1, False))
    assert [record["model"] for record in records] == ["clip_visual", "e4e"]
    for record in records:
        assert record["eager_ms"] > 0 and record["dtype"] == precision.dtype_name
        assert ("frozen_ms" in record) == (not precision.quantized)
        assert (record["freeze_warmup_s"] is None) == precision.quantized


def test_the_latency_benchmark_prints_rows_for_bf16_weights_and_then_for_int8(monkeypatch, tiny_dir, capsys):
    """bf16 weights refuse fp32 inputs: the frozen trace must get the inputs each model's own predict path casts."""
    import json

    import runners.bench_latency as bench
    from core.timing import emit
    from runners.bench_settings import BenchSettings
    from runners.bench_stages import STAGES

    def tiny_pipeline_in(args, svm_path, dtype, batch_size, lanes):
        config = P.PipelineConfig(device="cpu", dtype=dtype, batch_size=batch_size, lanes=lanes)
        return P.Pipeline(config, tiny_branches(tiny_dir, select_precision("cpu", dtype)), CentreFaceFinder())

    monkeypatch.setattr(bench, "full_pipeline", tiny_pipeline_in)
    with torch_threads(2):
        for record in STAGES["latency"](BenchSettings(device="cpu", dtypes=("bf16", "int8"), repeats=1)):
            emit(record)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for dtype in ("bf16", "int8"):
        assert [row["lanes"] for row in rows if row["stage"] == "latency" and row["dtype"] == dtype] == [1, 2]
        models = [row for row in rows if row["stage"] == "latency_model" and row["dtype"] == dtype]
        assert [row["model"] for row in models] == ["clip_visual", "e4e"]
        assert all(row["eager_ms"] > 0 for row in models)
    assert all(row["frozen_ms"] > 0 for row in rows if row["stage"] == "latency_model" and row["dtype"] == "bf16")


def test_the_int8_layer_benchmark_times_every_quantized_conv_once_grouped_by_shape():
    from runners.bench_int8 import conv_layer_ms
    from encoder.e4e import int8_conv_names

    model = Encoder4Editing.random_init(E4EConfig.tiny(), seed=0, precision=FP32)
    names = int8_conv_names(model)
    rows = conv_layer_ms(model, torch.randn(2, 3, 256, 256), names, repeats=1)
    assert sum(row["convs"] for row in rows) == len(names)
    assert len({(row["in"], row["out"], row["kernel"], row["stride"], row["input_side"]) for row in rows}) == len(rows)
    assert all(row["fp32_ms"] > 0 and row["int8_ms"] > 0 for row in rows)
    assert {row["input_side"] for row in rows} >= {256, 64, 2}  # the input conv and the heads' first and last
