"""The benchmark's reference: the same model and update in PyTorch with Hugging Face transformers.

Needs the ``torch`` extra (``pip install -e '.[torch]'``); ``launch.benchmarking.run``
imports it only when the comparison is asked for.
"""

from __future__ import annotations

import time

import numpy as np

from launch.benchmarking.shapes import synthetic_batch
from launch.train.flops import Shape


class TorchStep:
    """The same model and update in PyTorch with Hugging Face transformers (CPU)."""

    def __init__(self, shape: Shape, seed: int = 0):
        import torch
        import transformers
        torch.manual_seed(seed)
        self.torch = torch
        host = synthetic_batch(shape, seed)
        self.batch = {k: torch.as_tensor(v).long() if v.dtype == np.int32 else torch.as_tensor(v)
                      for k, v in host.items()}
        common = dict(vocab_size=shape.vocab, attn_implementation="sdpa")
        if shape.arch == "gpt":
            config = transformers.GPT2Config(
                n_embd=shape.hidden, n_layer=shape.layers, n_head=shape.heads,
                n_inner=shape.mlp, n_positions=shape.seq, resid_pdrop=shape.dropout,
                embd_pdrop=shape.dropout, attn_pdrop=shape.dropout, **common)
            self.model = transformers.GPT2LMHeadModel(config)
        else:
            config = transformers.BertConfig(
                hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                num_attention_heads=shape.heads, intermediate_size=shape.mlp,
                max_position_embeddings=shape.seq, hidden_dropout_prob=shape.dropout,
                attention_probs_dropout_prob=shape.dropout, **common)
            self.model = transformers.BertForPreTraining(config)
        self.model.train()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, eps=1e-6,
                                           weight_decay=0.01)
        self.arch = shape.arch
        self.compile_seconds = 0.0
        self.memory = {}

    def _loss(self):
        torch, b = self.torch, self.batch
        ce = torch.nn.functional.cross_entropy
        if self.arch == "gpt":
            logits = self.model(input_ids=b["token_ids"]).logits
            return ce(logits.flatten(0, 1), b["clm_targets"].flatten())
        bert, heads = self.model.bert, self.model.cls
        sequence, pooled = bert(input_ids=b["token_ids"], token_type_ids=b["type_ids"],
                                attention_mask=torch.ones_like(b["token_ids"]),
                                return_dict=False)[:2]
        index = b["mlm_positions"].unsqueeze(-1).expand(-1, -1, sequence.shape[-1])
        gathered = torch.gather(sequence, 1, index)  # only the masked positions reach the head
        mlm = heads.predictions(gathered)
        nsp = heads.seq_relationship(pooled)
        return ce(mlm.flatten(0, 1), b["mlm_targets"].flatten()) + ce(nsp, b["nsp_labels"])

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss()
            loss.backward()
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
        float(loss.detach())
        return time.perf_counter() - t0


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True
