"""Benchmark pretrax's train step and input pipeline, with PyTorch side by side. Examples:

  python -m launch.benchmark                                  # the reference BERT shape, on CPU
  python -m launch.benchmark --shape=gpt_reference
  python -m launch.benchmark --scaling --notorch              # + seq 128→1024 and widths
  python -m launch.benchmark --profile --notorch              # + where the step's time goes
  python -m launch.benchmark --shape=bert_base_512 --notorch --peak_tflops=989   # H100 bf16
  python -m launch.benchmark --hidden=512 --layers=8 --seq=256    # any shape by flags
  taskset -c 0 python -m launch.benchmark --pipeline_only     # input rows/s, BERT/XLNet-base

Prints a table and writes every figure as JSON (--json). Library: launch/benchmarking/run.py, whose
docstring defines each figure (FLOPs formula, MFU peak, memory).
"""

import json

from absl import app, flags

from launch import binary

_SHAPE = flags.DEFINE_string("shape", "reference", "A named shape of launch.benchmarking.shapes."
                             "SHAPES (--pipeline_only: names, comma-separated).")
_OVERRIDES = {name: flags.DEFINE_string(name, None, f"Override the shape's {name}.")
              for name in ("arch", "hidden", "layers", "heads", "mlp", "seq", "batch", "vocab",
                           "predictions", "dropout", "dtype")}
_TORCH = flags.DEFINE_bool("torch", True, "Time the same model in PyTorch (needs the test extra).")
_PIPELINE = flags.DEFINE_bool("pipeline", True, "Time the input pipeline alone.")
_PIPELINE_ONLY = flags.DEFINE_bool("pipeline_only", False, "Time only the input pipelines (no "
                                   "model, any arch), by default at BERT-base's and XLNet-base's "
                                   "shapes (seq 512), over 8,192 rows each.")
_SCALING = flags.DEFINE_bool("scaling", False, "Also time seq 128→1024 and widths 128→512.")
_STEPS = flags.DEFINE_integer("steps", 10, "Steps per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds (the median is reported).")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s for MFU; 0 = the accelerator's "
                           "published bf16 peak (flops.py:CHIPS), on a CPU a measured matmul.")
_PROFILE = flags.DEFINE_bool("profile", False, "Also trace pretrax's step and print where its time "
                             "goes, by model part and kind of operation "
                             "(launch/train/profiling.py).")
_CPU_DEVICES = binary.define_cpu_devices_flag(-1)
_JSON = flags.DEFINE_string("json", "benchmark.json", "Where to write the figures ('' = not).")


def main(argv):
    from launch.benchmarking import run as bm  # imports JAX without starting its backends
    from launch.benchmarking import shapes
    names = (shapes.PIPELINE_SHAPES if _PIPELINE_ONLY.value and not _SHAPE.present else
             _SHAPE.value.split(",") if _PIPELINE_ONLY.value else [_SHAPE.value])
    if unknown := sorted(set(names) - set(shapes.SHAPES)):
        raise app.UsageError(f"--shape={unknown}: known shapes {sorted(shapes.SHAPES)}")
    named = {n: shapes.resolve(n, {k: f.value for k, f in _OVERRIDES.items()}) for n in names}
    shape = next(iter(named.values()))
    if _CPU_DEVICES.value == -1:  # one per core, as many as divide the batch
        flags.FLAGS.cpu_devices = bm.cpu_devices_for(shape.batch, binary.cpu_cores())
    binary.start(argv, multiprocess=False)
    if _PIPELINE_ONLY.value:
        print(bm.pipelines_table(result := bm.pipelines(named)))
    else:
        result = binary.explain_errors(
            bm.benchmark, shape, steps=_STEPS.value, rounds=_ROUNDS.value,
            with_torch=_TORCH.value, with_pipeline=_PIPELINE.value, peak_tflops=_PEAK.value,
            profile_steps=3 if _PROFILE.value else 0)
        if _SCALING.value:
            result["scaling"] = bm.scaling(shape, peak=result["peak_gflops_per_s"] * 1e9)
        print(bm.table(result))
        if _PROFILE.value:
            from launch.train import profiling
            print(profiling.table(result["profile"]))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=2)
        print(f"figures: {_JSON.value}")


def run():
    """Console-script entry point (`pretrax-benchmark`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
