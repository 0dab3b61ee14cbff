"""N layers of one block class: built unrolled or as one ``nn.scan``, with optional ``nn.remat``.

Every stack (BERT's encoder, ALBERT's shared layer, GPT's decoder, XLNet) follows one protocol:
a block is called ``block(carry, *args)`` and returns ``(carry, out)``, the pair ``nn.scan``
expects. ``in_axes`` says, for each of ``args``, whether every layer gets the same value
(``nn.broadcast``) or its own slice along axis 0 (``0``, e.g. one layer's KV cache or memory);
the layers' ``out`` come back stacked on a new axis 0 (None when the block returns None).
``make_layers`` builds the layers in ``setup`` and ``run_layers`` runs them, so the unrolled loop
and the scan compute the same function with the same parameter names:

* unrolled: ``{name}_0 … {name}_{N-1}`` (one instance per layer), or ``{name}`` alone when the
  layers share their parameters (ALBERT);
* scanned: ``{name}``, with parameters stacked on a leading ``layers`` axis, or broadcast (one set,
  shared) when the layers share them.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import axes
from lm.config import TransformerConfig

BROADCAST_ARGS = (nn.broadcast, nn.broadcast)  # (attention mask, deterministic)


def _remat(block: type[nn.Module], config: TransformerConfig, deterministic_argnum: int
           ) -> type[nn.Module]:
    """``block``, wrapped in ``nn.remat`` when ``config.remat == "full"``."""
    if config.remat != "full":
        return block
    # The argnum counts ``self``; a Python bool must be static. CSE prevention only matters
    # outside scan (scan already stops XLA merging the recompute with the forward pass).
    return nn.remat(block, static_argnums=(deterministic_argnum,),
                    prevent_cse=not config.scan_layers)


def make_layers(block: type[nn.Module], config: TransformerConfig, *,
                in_axes: Sequence[Any] = BROADCAST_ARGS, shared: bool = False,
                deterministic_argnum: int = 3) -> nn.Module | list[nn.Module]:
    """The ``config.num_layers`` layers of ``block(config)``; call inside ``setup``.

    Args:
      block: the layer class, called ``(carry, *args) -> (carry, out)``.
      config: ``num_layers``, ``scan_layers`` and ``remat`` choose the form.
      in_axes: per argument after the carry, ``nn.broadcast`` or ``0`` (see the module docstring).
      shared: one set of parameters for all N layers (ALBERT).
      deterministic_argnum: the position of ``deterministic`` in the block's signature, counting
        ``self``; remat makes it static.

    Returns:
      a list of N modules (unrolled), one module applied N times (unrolled, shared) or one scanned
      module; assign it to a ``setup`` attribute, which names the parameters.
    """
    layer = _remat(block, config, deterministic_argnum)
    n = config.num_layers
    if not config.scan_layers:
        return layer(config) if shared else [layer(config) for _ in range(n)]
    if shared:
        return nn.scan(layer, variable_broadcast="params",
                       split_rngs={"params": False, "dropout": True},
                       in_axes=tuple(in_axes), length=n)(config)
    return nn.scan(layer, variable_axes={"params": 0},
                   split_rngs={"params": True, "dropout": True},
                   in_axes=tuple(in_axes), length=n,
                   metadata_params={nn.PARTITION_NAME: axes.LAYERS})(config)


def run_layers(layers: nn.Module | list[nn.Module], config: TransformerConfig, carry: Any,
               *args: Any, in_axes: Sequence[Any] = BROADCAST_ARGS, keep_inputs: bool = False
               ) -> tuple[Any, Any]:
    """Runs what ``make_layers`` built (with the same ``in_axes``) on ``carry``.

    Args:
      layers, config: as ``make_layers`` built them.
      carry: the first layer's input.
      *args: the other arguments of every layer (see ``in_axes``).
      in_axes: as given to ``make_layers``.
      keep_inputs: return the carry each layer received (XLNet's memory for the next segment)
        instead of the layers' outputs; taken outside the layer, so a rematerialised layer's
        gradient is the same as without it. Unrolled layers only.

    Returns:
      ``(carry, outs)``: the last layer's carry and every layer's ``out`` (or input carry, with
      ``keep_inputs``) stacked on axis 0.

    Raises:
      ValueError: for ``keep_inputs`` with ``scan_layers``.
    """
    if config.scan_layers:
        if keep_inputs:
            raise ValueError("keep_inputs needs unrolled layers (scan_layers=False)")
        return layers(carry, *args)
    if not isinstance(layers, (list, tuple)):  # one shared layer
        layers = [layers] * config.num_layers
    outs = []
    for i, layer in enumerate(layers):
        layer_args = [arg if axis is nn.broadcast else jax.tree.map(operator.itemgetter(i), arg)
                      for arg, axis in zip(args, in_axes, strict=True)]
        carry_in = carry
        carry, out = layer(carry, *layer_args)
        outs.append(carry_in if keep_inputs else out)
    return carry, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
