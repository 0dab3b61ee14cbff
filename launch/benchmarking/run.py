"""Train-step and input-pipeline benchmarks, with the same model in PyTorch side by side.

What is measured, for one architecture (``bert``: MLM + NSP; ``gpt``: causal LM) and shape:

* **step time**: the jitted, sharded pretraining step of ``launch.train.step_fns`` (the one
  ``launch.pretrain`` runs), on a synthetic batch already on the devices; after warm-up, rounds of
  ``steps`` updates timed with ``block_until_ready``; the median round gives ms/step and tokens/s.
* **model FLOPs per step** (``launch/train/flops.py:model_flops``, which the train loop's ``mfu``
  shares): matmuls only, 3 × the forward (backward = 2 × forward). Per token and layer the
  forward costs ``2·(4·D² + 2·D·F)`` (QKV, output, MLP) plus ``4·L·D`` for the attention scores
  and the weighted sum (all L keys, causal or not, as PaLM counts them); embeddings are gathers
  (0), ALBERT's E→D projection ``2·E·D``. BERT's MLM head counts only its gathered positions
  (``2·D² + 2·D·V`` each), NSP ``2·D² + 4·D`` a sequence; GPT's LM head ``2·D·V`` every token.
  This is "6·N per token + the attention terms".
* **MFU**: FLOPs per second over a peak. On an accelerator the peak is given (``peak_tflops``); on
  CPU it is measured in the same run: the best of a large jitted float32 matmul.
* **compile time**, and **memory**: XLA's own accounting of the compiled step (arguments, outputs,
  temporaries) and the process's peak resident set.
* **input pipeline**: rows/s of the run's ``make_dataset`` (BERT: pairs and masking,
  ``data/pipeline.py``; GPT: packed rows, ``data/clm.py``; XLNet: pairs, span targets, orders and
  ``can_attend`` masks, ``data/plm.py``) on the embedded corpus with no model, after the first
  batch (which reads and tokenises the corpus), and its tokens/s over the step's. One process,
  one thread: under ``taskset -c 0`` that is one core. XLNet (``arch="xlnet"``) is timed for its
  pipeline only (:func:`pipelines`; ``--pipeline_only``).
* **PyTorch** (the ``torch`` extra; ``launch/benchmarking/torch_reference.py``): Hugging Face
  ``BertForPreTraining`` internals (SDPA attention; the MLM head applied to the same number of
  gathered positions) or ``GPT2LMHeadModel``; same shapes,
  dropout, AdamW and clipping; rounds interleaved with pretrax's so both see the same machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import resource
import statistics
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from launch.benchmarking.shapes import synthetic_batch
from launch.configs import bert as bert_configs
from launch.configs import gpt as gpt_configs
from launch.configs import xlnet as xlnet_configs
from launch.train import flops, modeling, optimizer, step_fns, train_state
from launch.train import mesh as mesh_lib
from launch.train.flops import Shape, model_flops
from lm import config as lm_config
from lm import models
from objectives import registry


def cpu_devices_for(batch: int, cores: int) -> int:
    """How many CPU devices the benchmark splits the host into: one per core, at most as many as
    divide the batch (data parallelism over cores, ``--cpu_devices``)."""
    return max(d for d in range(1, max(1, cores) + 1) if batch % d == 0)


def matmul_peak_flops(n: int = 2048, repeats: int = 5, dtype=jnp.float32) -> float:
    """The best FLOP/s of an ``n × n`` jitted matmul on the default device (the CPU "peak")."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


def run_config(shape: Shape):
    """The run config of ``shape``: ``bert.py:tiny``, ``gpt.py:tiny`` or ``xlnet.py:tiny`` with
    the shape's model fields (vocabulary, D, N, H, F, positions), dropout and dtype."""
    configs = {"bert": bert_configs, "gpt": gpt_configs, "xlnet": xlnet_configs}
    if shape.arch not in configs:
        raise ValueError(f"benchmark arch {shape.arch!r}: use bert, gpt or xlnet")
    cfg = configs[shape.arch].get_config("tiny")
    with cfg.unlocked():
        cfg.model.update(vocab_size=shape.vocab, hidden_size=shape.hidden, num_layers=shape.layers,
                         num_heads=shape.heads, mlp_dim=shape.mlp, max_length=shape.seq,
                         dropout_rate=shape.dropout, attention_dropout_rate=shape.dropout,
                         dtype=shape.dtype)
        cfg.data.max_seq_length = shape.seq
        if shape.arch != "gpt":  # MLM predictions or XLNet's targets
            cfg.data.max_predictions_per_seq = shape.predictions
        cfg.train.batch_size = shape.batch
    return cfg


def model_config(cfg, shape: Shape) -> lm_config.TransformerConfig:
    return modeling.model_config(cfg, shape.vocab)


def objective_names(shape: Shape) -> tuple[str, ...]:
    """The objectives of the measured step: BERT's MLM + NSP, GPT's causal LM or XLNet's PLM."""
    return {"gpt": (registry.CLM,), "xlnet": (registry.PLM,)}.get(
        shape.arch, (registry.MLM, registry.NSP))


class JaxStep:
    """pretrax's compiled train step at ``shape``, with its state and a batch on the devices."""

    def __init__(self, shape: Shape, seed: int = 0):
        cfg = run_config(shape)
        self.model_config = model_config(cfg, shape)
        model = models.make_model(cfg.model.arch, self.model_config)
        mesh = mesh_lib.make_mesh(cfg.mesh)
        rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
        mesh_lib.check_batch_size(shape.batch, mesh, rules)
        tx = optimizer.make_optimizer(cfg.train)
        host = synthetic_batch(shape, seed)
        self.state, shardings = train_state.create_train_state(
            model, tx, train_state.dummy_batch({k: (v.shape, v.dtype) for k, v in host.items()}),
            seed, mesh, rules)
        self.n_params = sum(x.size for x in jax.tree_util.tree_leaves(self.state.params))
        train_fn, _ = step_fns.compile_steps(cfg, model, tx, shardings, mesh, rules)
        self.batch = mesh_lib.global_batch(host, mesh_lib.batch_sharding(mesh, rules))
        self.rng = jax.random.key(seed)  # the dropout key
        jitted = train_fn.__wrapped__  # the jax.jit inside step_fns.in_mesh
        t0 = time.perf_counter()
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            compiled = jitted.lower(self.state, self.batch, self.rng).compile()
        self.compile_seconds = time.perf_counter() - t0
        self.memory = _memory_of(compiled)
        self._compiled = compiled
        self._fn = train_fn

    def profile(self, steps: int = 3) -> dict:
        """``launch.train.profiling.breakdown`` of ``steps`` updates."""
        from launch.train import profiling

        def args():
            return self.state, self.batch, self.rng

        def step(state, batch, rng):
            self.state, metrics = self._fn(state, batch, rng)
            return self.state, metrics

        return profiling.breakdown(step, args, self._compiled.as_text(), steps)

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` updates, waiting for the last one."""
        t0 = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self._fn(self.state, self.batch, self.rng)
        jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - t0


def _memory_of(compiled) -> dict[str, float]:
    try:
        m = compiled.memory_analysis()
    except (NotImplementedError, AttributeError):
        return {}
    if m is None:
        return {}
    mib = 1 << 20
    return {"arguments_mib": m.argument_size_in_bytes / mib,
            "outputs_mib": m.output_size_in_bytes / mib,
            "temporaries_mib": m.temp_size_in_bytes / mib}


def time_interleaved(runners: dict[str, object], *, steps: int, rounds: int,
                     warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each runner, per round; rounds alternate between runners."""
    for r in runners.values():
        r.run(warmup)
    out = {name: [] for name in runners}
    for _ in range(rounds):
        for name, r in runners.items():
            out[name].append(r.run(steps) / steps)
    return out


def pipeline_throughput(shape: Shape, batches: int = 30) -> dict[str, float]:
    """Rows/s of the run's input pipeline (module docstring) at ``shape`` on the embedded corpus,
    after the first batch (which reads and tokenises the corpus); per second of wall time and of
    this process's CPU time (the one to compare on a shared machine)."""
    from launch.pretraining.inputs import objective_data
    cfg = run_config(shape)
    inputs = objective_data(objective_names(shape))
    stream = inputs.make_dataset(cfg.data, "train", batch_size=shape.batch, seed=0)
    t0 = time.perf_counter()
    next(stream)
    first = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in itertools.islice(stream, batches):
        pass
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"first_batch_s": first, "batches_per_s": batches / seconds,
            "rows_per_s": batches * shape.batch / seconds,
            "rows_per_cpu_s": batches * shape.batch / cpu,
            "tokens_per_s": batches * shape.tokens / seconds}


# The original XLNet input pipeline (per row, in Python) as issue 20 measured it: about 3.3 ms a
# row at XLNet-base's shape on one core. :func:`pipelines` states XLNet's rows/s against it.
ORIGINAL_XLNET_MS_PER_ROW = 3.3


def pipelines(named: dict[str, Shape], rows: int = 8192,
              log: Callable[[str], None] = print) -> dict:
    """:func:`pipeline_throughput` of each named shape over about ``rows`` rows (no model: any
    arch, XLNet's included), with the cores this process may run on. JSON-able."""
    out = {"cores": len(os.sched_getaffinity(0)), "pipelines": {}}
    for name, shape in named.items():
        log(f"timing the {shape.arch} input pipeline at {name} …")
        p = out["pipelines"][name] = {"shape": dataclasses.asdict(shape), **pipeline_throughput(
            shape, max(1, rows // shape.batch))}
        if shape.arch == "xlnet":
            original = 1e3 / ORIGINAL_XLNET_MS_PER_ROW
            p["over_original"] = p["rows_per_s"] / original
            p["cpu_over_original"] = p["rows_per_cpu_s"] / original
    return out


def pipelines_table(result: dict) -> str:
    """The printed summary of :func:`pipelines`."""
    lines = [f"input pipelines alone, on {result['cores']} core(s) (embedded corpus, no model):",
             f"{'shape':18} {'arch':6} {'L':>5} {'P':>4} {'B':>5} {'rows/s':>9} "
             f"{'rows/CPU s':>10} {'tokens/s':>10} {'first batch s':>13}"]
    for name, p in result["pipelines"].items():
        s = p["shape"]
        lines.append(f"{name:18} {s['arch']:6} {s['seq']:5d} {s['predictions']:4d} "
                     f"{s['batch']:5d} {p['rows_per_s']:9.0f} {p['rows_per_cpu_s']:10.0f} "
                     f"{p['tokens_per_s']:10.0f} {p['first_batch_s']:13.1f}")
    for name, p in result["pipelines"].items():
        if "over_original" in p:
            lines.append(f"{name}: {p['over_original']:.1f}x (wall) and "
                         f"{p['cpu_over_original']:.1f}x (CPU) the original per-row XLNet "
                         f"pipeline's {ORIGINAL_XLNET_MS_PER_ROW} ms a row "
                         f"({1e3 / ORIGINAL_XLNET_MS_PER_ROW:.0f} rows/s)")
    return "\n".join(lines)


def summarise(shape: Shape, per_step: list[float], peak: float, runner) -> dict:
    median = statistics.median(per_step)
    flops = model_flops(shape)
    return {"ms_per_step": 1e3 * median, "tokens_per_s": shape.tokens / median,
            "rounds_ms": [round(1e3 * s, 2) for s in per_step],
            "params_m": runner.n_params / 1e6, "model_tflops_per_step": flops / 1e12,
            "model_gflops_per_s": flops / median / 1e9, "mfu": flops / median / peak,
            "compile_s": runner.compile_seconds, **runner.memory}


def benchmark(shape: Shape, *, steps: int = 10, rounds: int = 3, warmup: int = 2,
              with_torch: bool = True, with_pipeline: bool = True, peak_tflops: float = 0.0,
              pipeline_batches: int = 30, profile_steps: int = 0,
              log: Callable[[str], None] = print) -> dict:
    """Everything in the module docstring for one shape. Returns a JSON-able dict."""
    if shape.arch == "xlnet":
        raise ValueError("the xlnet benchmark times the input pipeline only: use --pipeline_only")
    device = jax.devices()[0]
    published = (flops.peak_flops_per_device(0.0, device.device_kind)
                 if device.platform != "cpu" else None)
    if peak_tflops:
        peak, peak_source = peak_tflops * 1e12, "given (--peak_tflops)"
    elif published:
        peak, peak_source = published, f"the published bf16 peak of a {device.device_kind}"
    else:
        log("measuring the matmul peak …")
        peak = matmul_peak_flops(dtype=jnp.dtype(shape.dtype))
        peak_source = f"measured: best {shape.dtype} 2048² jitted matmul"
    log(f"compiling pretrax's {shape.arch} step …")
    runners = {"pretrax": JaxStep(shape)}
    if with_torch:
        from launch.benchmarking.torch_reference import TorchStep, torch_available
        if not torch_available():
            raise ValueError("the PyTorch comparison needs torch and transformers: "
                             "pip install -e '.[test]' (or pass --notorch)")
        runners["pytorch"] = TorchStep(shape)
    log(f"timing {rounds} interleaved rounds of {steps} steps …")
    times = time_interleaved(runners, steps=steps, rounds=rounds, warmup=warmup)
    runs = {name: summarise(shape, times[name], peak, r) for name, r in runners.items()}
    result = {"shape": dataclasses.asdict(shape),
              "device": f"{device.platform}:{device.device_kind}",
              "device_count": jax.device_count(), "peak_gflops_per_s": peak / 1e9,
              "peak_source": peak_source, "runs": runs}
    if with_torch:
        result["pretrax_over_pytorch"] = (result["runs"]["pretrax"]["tokens_per_s"] /
                                          result["runs"]["pytorch"]["tokens_per_s"])
    if profile_steps:
        log(f"profiling {profile_steps} steps …")
        result["profile"] = runners["pretrax"].profile(profile_steps)
    if with_pipeline:
        log("timing the input pipeline …")
        result["pipeline"] = pipeline_throughput(shape, pipeline_batches)
        result["pipeline"]["over_step"] = (result["pipeline"]["tokens_per_s"] /
                                           result["runs"]["pretrax"]["tokens_per_s"])
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def scaling(base: Shape, *, seqs=(128, 256, 512, 1024), widths=(128, 256, 512),
            tokens: int = 4096, steps: int = 5, rounds: int = 3, peak: float,
            log: Callable[[str], None] = print) -> list[dict]:
    """pretrax's step at several sequence lengths (batch × seq = ``tokens``) and widths (heads
    of 64, MLP 4 × width, at the base sequence length)."""
    shapes = [dataclasses.replace(base, seq=s, batch=max(1, tokens // s)) for s in seqs]
    shapes += [dataclasses.replace(base, hidden=w, heads=max(1, w // 64), mlp=4 * w)
               for w in widths]
    rows = []
    for s in shapes:
        log(f"scaling: seq {s.seq} batch {s.batch} width {s.hidden} …")
        runner = JaxStep(s)
        per_step = time_interleaved({"x": runner}, steps=steps, rounds=rounds, warmup=1)["x"]
        rows.append({"seq": s.seq, "batch": s.batch, "hidden": s.hidden, "heads": s.heads,
                     **summarise(s, per_step, peak, runner)})
    return rows


def table(result: dict) -> str:
    """The printed summary of :func:`benchmark` (and its ``scaling`` rows, if any)."""
    s = result["shape"]
    lines = [f"{s['arch']}: D={s['hidden']} N={s['layers']} H={s['heads']} F={s['mlp']} "
             f"L={s['seq']} B={s['batch']} V={s['vocab']} P={s['predictions']} "
             f"dropout={s['dropout']} {s['dtype']} on {result['device_count']} x "
             f"{result['device']} "
             f"(peak {result['peak_gflops_per_s']:.0f} GFLOP/s, {result['peak_source']})",
             f"{'':18} {'ms/step':>9} {'tokens/s':>10} {'GFLOP/s':>9} {'MFU':>6} "
             f"{'compile s':>9} {'params M':>9}"]
    for name, r in result["runs"].items():
        lines.append(f"{name:18} {r['ms_per_step']:9.1f} {r['tokens_per_s']:10.0f} "
                     f"{r['model_gflops_per_s']:9.1f} {r['mfu']:6.1%} {r['compile_s']:9.1f} "
                     f"{r['params_m']:9.2f}   rounds {r['rounds_ms']}")
    if "pretrax_over_pytorch" in result:
        lines.append(f"pretrax / pytorch tokens/s: {result['pretrax_over_pytorch']:.2f}x")
    mem = result["runs"]["pretrax"]
    if "temporaries_mib" in mem:
        lines.append(f"pretrax step memory (XLA): arguments {mem['arguments_mib']:.1f} MiB, "
                     f"outputs {mem['outputs_mib']:.1f} MiB, temporaries "
                     f"{mem['temporaries_mib']:.1f} MiB; process peak RSS "
                     f"{result['max_rss_mib']:.0f} MiB")
    if "pipeline" in result:
        p = result["pipeline"]
        lines.append(f"input pipeline alone: {p['rows_per_s']:.0f} rows/s, "
                     f"{p['tokens_per_s']:.0f} tokens/s = {p['over_step']:.1f}x the step's "
                     f"consumption (first batch {p['first_batch_s']:.1f} s)")
    if result.get("scaling"):
        lines.append(f"{'seq':>5} {'batch':>5} {'width':>5} {'ms/step':>9} {'tokens/s':>9} "
                     f"{'MFU':>6}")
        for r in result["scaling"]:
            lines.append(f"{r['seq']:5d} {r['batch']:5d} {r['hidden']:5d} {r['ms_per_step']:9.1f} "
                         f"{r['tokens_per_s']:9.0f} {r['mfu']:6.1%}")
    return "\n".join(lines)
