"""Transformers interop: export a scalinglab GPT run as a GPT-2 model folder, load local HF models.

transformers/safetensors are the optional `hf` extra: imported lazily; nothing is ever downloaded.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.fileio import staged_dir

INSTALL_HINT = "pip install 'scalinglab[hf]'"
EXPORT_INFO = "scalinglab.json"  # provenance + the data's tokenizer description, beside config.json


def require_hf():
    """Import transformers offline (HF_HUB_OFFLINE=1 before import) or say how to install it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import safetensors  # noqa: F401
        import transformers
    except ImportError:
        raise UserError(f"transformers and safetensors are needed for Hugging Face models: {INSTALL_HINT}") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars would clutter --json runs
    return transformers


def is_hf_folder(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def gpt2_config(shape) -> Any:
    """The GPT2Config of a ModelShape, or a UserError for shapes GPT-2 cannot express."""
    transformers = require_hf()
    if shape.arch != "gpt":
        raise UserError(f"arch {shape.arch!r} cannot be exported as GPT-2: only arch 'gpt' runs export (format hf)")
    if shape.pos != "learned":
        raise UserError(
            f"position encoding {shape.pos!r} cannot be exported as GPT-2 (it has learned positions only): train with pos = 'learned' to export"
        )
    if not shape.bias:
        raise UserError(
            "a model without biases cannot be exported as GPT-2 (GPT-2 always has biases): train with bias = true to export"
        )
    return transformers.GPT2Config(
        vocab_size=shape.vocab,
        n_positions=shape.seq_len,
        n_embd=shape.d_model,
        n_layer=shape.n_layers,
        n_head=shape.n_heads,
        n_inner=shape.mlp_ratio * shape.d_model,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=shape.tied,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        architectures=["GPT2LMHeadModel"],
    )


def gpt_to_hf_state(model) -> dict:
    """Our GPT's state dict under HF GPT-2 names: nn.Linear [out, in] -> Conv1D [in, out]."""
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    out = {}
    s = model.shape
    for k, v in model.state_dict().items():
        v = v.detach().float().cpu()
        if s.mup_base:  # fold muP's constants into weights GPT-2 has: same logits, standard attention and readout
            if k.startswith("transformer.ln_f."):
                v = v / s.width_mult  # logits / width_mult: ln_f feeds only the (bias-free) readout
            elif k.endswith(("attn.c_attn.weight", "attn.c_attn.bias")):
                v = v.clone()
                v[: s.d_model] /= math.sqrt(s.d_model // s.n_heads)  # q / sqrt(d_head): 1/d_head under 1/sqrt(d_head)
        out[k] = (v.t() if k.endswith(conv1d) else v).contiguous()
    if model.shape.tied:  # safetensors stores a tensor once; transformers re-ties lm_head on load
        out.pop("lm_head.weight", None)
    return out


def export_hf(run: str | Path, out: str | Path) -> dict:
    """Write RUN as a transformers GPT-2 folder at OUT (config, safetensors, tokenizer when known)."""
    from safetensors.torch import save_file

    from scalinglab.data.tokenizers import data_tokenizer
    from scalinglab.folders import DataDir, RunDir
    from scalinglab.train.checkpoint import load_run_model

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not empty (or is a file)", hint="choose a new folder", keys=("out",))
    model, spec = load_run_model(run)
    model = model.float().eval()
    config = gpt2_config(spec.shape)
    data = RunDir(run).data_path(spec)
    with staged_dir(out, "export") as tmp:  # the folder appears whole or not at all
        tok_obj = data_tokenizer(data) if data else None
        if tok_obj is not None and tok_obj.eot_id < spec.shape.vocab:
            config.eos_token_id = tok_obj.eot_id  # lets generate() stop at end of text
        config.save_pretrained(tmp)
        save_file(gpt_to_hf_state(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok = save_tokenizer(tok_obj, tmp) if tok_obj is not None else None
        info = {
            "source_run": str(Path(run).resolve()),
            "shape": spec.shape.to_dict(),
            "data": str(data) if data else None,
            "tokenizer": DataDir(data).tokenizer_info() if data else None,
            "hf_tokenizer": tok,
        }
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return {
        "out": str(out),
        "params": sum(p.numel() for p in model.parameters()),
        "tokenizer": tok,
        "files": sorted(p.name for p in out.iterdir()),
    }


def save_tokenizer(tok, out: Path) -> str | None:
    """Save a DATA folder's tokenizer (`data_tokenizer(DATA)`) as a transformers fast tokenizer in OUT; returns
    its kind, or None when it has no transformers form (char, sentencepiece: evaluate those through the run itself)."""
    from scalinglab.data.tokenizers import BytesTokenizer, HFTokenizer

    if isinstance(tok, BytesTokenizer):
        backend = byte_tokenizer(tok.vocab_size)
    elif isinstance(tok, HFTokenizer):
        backend = tok.tok
    else:
        return None
    # split_special_tokens: a literal "<|endoftext|>" in text stays text, as in scalinglab's own encode
    fast = require_hf().PreTrainedTokenizerFast(tokenizer_object=backend, split_special_tokens=True)
    fast.eos_token = backend.id_to_token(tok.eot_id)
    fast.save_pretrained(out)
    return tok.kind


def byte_tokenizer(vocab_size: int = 256):
    """A `tokenizers` Tokenizer whose ids are the UTF-8 byte values (ids >= 256 are special tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    from scalinglab.data.tokenizers import BYTE_SPECIALS

    alphabet = ByteLevel.alphabet()  # the 256 printable stand-ins GPT-2 uses for bytes
    b2u = _bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(BYTE_SPECIALS[: vocab_size - 256])  # ids 256.., as scalinglab's bytes tokenizer
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (the one ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def load_hf_model(path: str | Path, device: str = "cpu"):
    """A local transformers causal LM in float32, eval mode (local files only)."""
    import warnings

    from scalinglab.train.checkpoint import load_failure

    transformers = require_hf()
    try:
        with warnings.catch_warnings():  # torch's pickle warnings would print before the one error line
            warnings.simplefilter("ignore")
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype="float32")
    except pickle.UnpicklingError as e:  # a pytorch_model.bin refused by torch.load(weights_only=True)
        raise UserError(
            f"the weights file in {path} {load_failure(e)}; use a model saved as safetensors, or re-export it"
        ) from None
    except Exception as e:  # noqa: BLE001 - missing/corrupt files, unknown architectures: the folder is not usable
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{path} is not a loadable transformers causal-LM folder ({msg}); give a folder with config.json and weights"
        ) from None
    return model.float().to(device).eval()  # .float(): older transformers ignore dtype=


def load_hf_tokenizer(path: str | Path):
    """The folder's own tokenizer, or None when it has none."""
    p = Path(path)
    if not any((p / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer.model", "tokenizer_config.json")):
        return None
    transformers = require_hf()
    try:
        return transformers.AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(
            f"the tokenizer in {p} does not load ({str(e).splitlines()[0] if str(e) else type(e).__name__}): re-export or fix its tokenizer files"
        ) from None
