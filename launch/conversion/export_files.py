"""What an export carries besides its weights: the tokenizer and a model card.

``tokenizer_files`` gives ``tokenizer.json`` + ``tokenizer_config.json`` +
``special_tokens_map.json`` for ``AutoTokenizer.from_pretrained(EXPORT)``: pretrax's SentencePiece
model (the shipped one, or a ``.model`` of ``launch.train_tokenizer``) converted to a
``tokenizers`` tokenizer that gives the same ids (``data.sentencepiece_hf.exact``), with the
special tokens around a text that pretraining put there (``[CLS] a [SEP]`` for BERT and ALBERT,
``a [SEP] [CLS]`` for XLNet, none for GPT and T5); a converted workdir's ``hf:DIR`` tokenizer
files are carried as they are. ``model_card`` writes ``README.md``: the architecture, the
training data, the steps, the eval figures of the workdir's ``results.json`` and the command that
made it.
"""

from __future__ import annotations

import json
import os

from data import features, hf_tokenizers, sentencepiece_hf
from data import tokenizer as tokenizer_lib
from launch.train import storage
from lm import interop

# transformers' name of each of pretrax's special pieces (data/tokenizer.py).
TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]",
          "sep_token": "[SEP]", "mask_token": "[MASK]", "bos_token": "<s>", "eos_token": "</s>"}
PIPELINES = {"bert": "fill-mask", "albert": "fill-mask", "gpt": "text-generation",
             "xlnet": "text-generation", "t5": "text2text-generation"}
# Models whose inputs are the text alone, with no [CLS]/[SEP] template and no token types (GPT's
# documents end in </s>; T5's sources are what its seq2seq input builder makes them).
_PLAIN_TEXT = ("gpt", "t5")


def tokenizer_files(name: str, arch: str, max_length: int) -> dict[str, bytes]:
    """File name → content of the tokenizer a config's ``data.tokenizer`` names, for an export
    of a model.arch=``arch`` model with ``max_length`` positions.

    Raises:
      FileNotFoundError: a converted workdir's ``hf:DIR`` holds no tokenizer files any more.
      ValueError: a SentencePiece char or word model (tokenizer.json has no such model).
    """
    if name.startswith(tokenizer_lib.HF_PREFIX):
        directory = name[len(tokenizer_lib.HF_PREFIX):]
        hf_tokenizers.load(directory)  # FileNotFoundError / ValueError when there is none
        files = {}
        for file in hf_tokenizers.FILES:
            if os.path.exists(os.path.join(directory, file)):
                with open(os.path.join(directory, file), "rb") as f:
                    files[file] = f.read()
        return files
    sp = tokenizer_lib.Tokenizer.load(name).sp
    label = name or "embedded"
    tokenizer = sentencepiece_hf.exact(sentencepiece_hf.read_proto(
        sp.serialized_model_proto(), label), label)
    if arch not in _PLAIN_TEXT:
        hf_tokenizers.add_template(tokenizer, TOKENS["cls_token"], TOKENS["sep_token"],
                                   xlnet=arch == "xlnet")
    # GPT-2 would add its token table's rows for token_type_ids: it gets none.
    inputs = ["input_ids", *([] if arch in _PLAIN_TEXT else ["token_type_ids"]), "attention_mask"]
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
                "padding_side": "left" if arch == "xlnet" else "right",
                "model_input_names": inputs, "clean_up_tokenization_spaces": False, **TOKENS}
    return {hf_tokenizers.TOKENIZER_JSON: tokenizer.to_str(pretty=True).encode("utf-8"),
            hf_tokenizers.CONFIG: _json(settings), hf_tokenizers.SPECIAL_MAP: _json(TOKENS)}


def token_ids(name: str) -> dict[str, int]:
    """``bos_token_id`` / ``eos_token_id`` of the tokenizer ``name`` (for the export's
    config.json: transformers' generation stops at its eos), those it has."""
    special = (hf_tokenizers.load(name[len(tokenizer_lib.HF_PREFIX):]).special_ids
               if name.startswith(tokenizer_lib.HF_PREFIX) else features.EMBEDDED_SPECIAL_IDS)
    return {f"{n}_token_id": getattr(special, n) for n in ("bos", "eos")
            if getattr(special, n) is not None}


def _json(value) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_results(workdir: str) -> dict:
    """The workdir's ``results.json`` (pretraining's final figures), {} when there is none or it
    cannot be read (a converted workdir has none)."""
    path = os.path.join(workdir, "results.json")
    try:
        with storage.open_file(path) as f:
            results = json.load(f)
    except (OSError, ValueError):
        return {}
    return results if isinstance(results, dict) else {}


def _figures(results: dict, step: int) -> list[str]:
    if not results:
        return ["No `results.json` in the workdir: no evaluation figures (a converted checkpoint, "
                "or a run that has not finished)."]
    at = results.get("step")
    lines = [f"Held-out figures of the pretraining run at step {at}"
             + ("" if at == step else f" (this export is step {step})") + ", from its "
             "`results.json`:", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in results.items() if k.startswith("eval/")]
    return lines


def _data(cfg: dict) -> list[str]:
    data, train = cfg.get("data", {}), cfg.get("train", {})
    if cfg.get("converted_from"):
        return [f"Converted from the Hugging Face checkpoint `{cfg['converted_from']}`; its "
                "training data is that checkpoint's."]
    corpus = data.get("corpus", "?")
    about = (" (pretrax's embedded corpus: five public-domain texts, see pretrax's "
             "data/corpora/PROVENANCE.md)" if corpus == "embedded" else "")
    objectives = ", ".join(k for k, v in cfg.get("objectives", {}).items() if v) or "?"
    return [f"- corpus: `{corpus}`{about}",
            f"- tokenizer: `{data.get('tokenizer', '?')}` (its `tokenizer.json` is here)",
            f"- objectives: {objectives}",
            f"- {train.get('steps', '?')} steps of {train.get('batch_size', '?')} sequences of "
            f"{data.get('max_seq_length', '?')} tokens, peak learning rate "
            f"{train.get('learning_rate', '?')}, seed {cfg.get('seed', '?')}"]


def model_card(cfg: dict, hf_config: dict, *, workdir: str, step: int, parameters: int,
               command: str, tokenizer: bool) -> str:
    """The export's ``README.md`` (``cfg``: the workdir's config.json as data)."""
    model, arch = cfg.get("model", {}), cfg.get("model", {}).get("arch", "?")
    pipeline = PIPELINES.get(arch, "feature-extraction")
    cls = hf_config["architectures"][0]
    shape = ", ".join(f"{k} {model[k]}" for k in ("num_layers", "hidden_size", "num_heads",
                                                  "mlp_dim", "max_length", "vocab_size")
                      if k in model)
    lines = [
        "---", "library_name: transformers", f"pipeline_tag: {pipeline}",
        f"tags: [pretrax, {arch}]", "---", "",
        f"# {os.path.basename(os.path.normpath(workdir))}", "",
        f"A {interop.family_for_arch(arch).NAME} model trained with pretrax (JAX/Flax), "
        "exported as transformers' "
        f"`{cls}` from the pretrax workdir `{workdir}` at step {step}.", "",
        "## Architecture", "", f"`{cls}`: {shape}; {parameters:,} parameters; activation "
        f"{model.get('activation', '?')}, {model.get('norm_position', '?')}-LayerNorm.", "",
        "## Training data", "", *_data(cfg), "", "## Evaluation", "",
        *_figures(read_results(workdir), step), "", "## How it was made", "",
        "```", command, "```", "",
        "The workdir's run config, every setting of the run, is `pretrax_config.json` here.", "",
        "## Use", ""]
    if tokenizer:
        example = ("'The [MASK] was calm.'" if pipeline == "fill-mask" else "'The sea was'")
        lines += ["```python", "from transformers import pipeline",
                  f"pipeline('{pipeline}', model='PATH/TO/THIS/DIRECTORY')({example})", "```"]
    else:
        lines.append("This export has no tokenizer files (see the conversion's output).")
    return "\n".join(lines) + "\n"
