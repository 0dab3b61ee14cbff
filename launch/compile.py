"""Compile a run config's train step ahead of time and say whether it fits. Examples:

  python -m launch.compile --config=launch/configs/gpt.py:small --topology=v5e:2x4
  python -m launch.compile --config=launch/configs/bert.py:large --topology=v4:2x2x2
  python -m launch.compile --config=launch/configs/gpt.py:7b --topology=v5e:16x16 --num_slices=2
  python -m launch.compile --config=launch/configs/gpt.py:small      # this host's accelerators

The step is launch.pretrain's (same model, mesh, shardings), compiled for the TPU topology on any
host (needs libtpu: pip install 'pretrax[tpu]'). Prints per-device memory against the chip's HBM,
FLOPs, a roofline bound on step time and MFU, and the collectives (launch/compiling/). When the
step does not fit it compiles candidate settings (remat, FSDP, microbatches) and names the first
that fits; exit status 1 either way, so a job script can stop before it starts a pod.
"""

import json
import os
import sys

from absl import flags

from launch import binary

_CONFIG = binary.define_config_flag("launch/configs/gpt.py:small")
_TOPOLOGY = flags.DEFINE_string("topology", "", "TPU topology to compile for, CHIP:SHAPE (e.g. "
                                "v5e:2x4, v5e:16x16, v4:2x2x2, v5p:4x4x4, v6e:4x4); '' = this "
                                "host's devices.")
_NUM_SLICES = flags.DEFINE_integer("num_slices", 1, "Slices of --topology joined over the "
                                   "data-centre network (multi-slice; the data axis spans them).")
_SUGGEST = flags.DEFINE_bool("suggest", True, "When the step does not fit, compile candidate "
                             "settings until one fits and name it.")
_JSON = flags.DEFINE_string("json", "", "Also write the figures as JSON to this file.")


def main(argv):
    if _TOPOLOGY.value:  # compiling for abstract TPUs: this host's own backend is the CPU
        os.environ["JAX_PLATFORMS"] = "cpu"
    binary.start(argv, multiprocess=False, tensorflow=False)
    from launch.compiling import run as compiling
    result = binary.explain_errors(compiling.compile_and_report, _CONFIG.value,
                                   topology=_TOPOLOGY.value, num_slices=_NUM_SLICES.value,
                                   suggest=_SUGGEST.value)
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=2, default=str)
    if result["fits"] is False:
        sys.exit(1)


def run():
    """Console-script entry point (`pretrax-compile`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
