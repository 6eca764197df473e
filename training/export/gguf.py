"""GGUF (llama.cpp, Ollama, LM Studio) from a merged export, where talklike can write it correctly.

The `gguf` package (pip install gguf, pure Python) has llama.cpp's file writer, tensor-name map and
tokenizer readers, but not llama.cpp's converter (convert_hf_to_gguf.py), which knows hundreds of
architectures and identifies each tokenizer's pre-tokenizer by hashing its output. talklike writes
the one case it can get exactly right without that table: a Llama-architecture model whose
tokenizer is a plain byte-level BPE (GPT-2 pre-tokenizer), which is what the offline tiny models
and many small Llama-family models use. For anything else, `gguf_status` says so and gives the
llama.cpp command to run on the merged folder; nothing is written half-right.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from training.errors import UserError

# What talklike quantizes itself with the gguf package (its numpy versions of llama.cpp's reference
# quantizers), and the k-quants only llama.cpp's llama-quantize makes.
QUANTS = ("f32", "f16", "bf16", "q8_0", "q5_1", "q4_0")
K_QUANTS = ("q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k", "q3_k_m", "q2_k")
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # what llama.cpp's converter writes without llama-quantize
LLAMA_CPP_COMMAND = (
    "git clone --depth 1 https://github.com/ggml-org/llama.cpp && "
    "pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt && "
    "python llama.cpp/convert_hf_to_gguf.py {folder} --outfile {outfile} --outtype {outtype}"
)


def converter_command(folder: str | os.PathLike, outfile: str | os.PathLike, outtype: str = "f16") -> str:
    return LLAMA_CPP_COMMAND.format(folder=folder, outfile=outfile, outtype=outtype)


def gguf_status(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Whether talklike can write a GGUF itself ("supported"), and if not, why and what to run instead.

    Without `folder` it reports whether the `gguf` package is installed. With a merged export folder
    it also checks the model: {"supported": bool, "reason": str, "command": str | None}.
    """
    try:
        import gguf  # noqa: F401
    except ImportError:
        installed = False
    else:
        installed = True
    reason = None if installed else "the gguf package is not installed (pip install gguf, ~120 kB, pure Python)"
    if folder is not None and reason is None:
        reason = unsupported_reason(Path(folder))
    outfile = f"{Path(folder).name if folder else 'model'}.gguf"
    command = converter_command(folder or "MERGED_EXPORT_FOLDER", outfile)
    if reason is None:
        message = "talklike can write this model as GGUF itself" if folder else "the gguf package is installed"
        return {"supported": True, "reason": message, "command": None}
    return {
        "supported": False,
        "reason": f"{reason}. To get a GGUF, export with merge and run llama.cpp's converter on that folder",
        "command": command,
    }


def unsupported_reason(folder: Path) -> str | None:
    """None when `folder` is a model this module converts exactly; else the reason it does not."""
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        return f"{folder.name} is an adapter-only export; GGUF needs the merged model"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return f"{folder}: needs config.json and tokenizer.json ({error})"
    if config.get("model_type") != "llama" or config.get("architectures") != ["LlamaForCausalLM"]:
        return f"architecture {config.get('architectures') or config.get('model_type')} is not Llama"
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", "default") != "default":
        return f"rope scaling {rope.get('rope_type')!r} needs llama.cpp's converter"
    if config.get("attention_bias") or config.get("mlp_bias"):
        return "bias terms in attention/MLP layers need llama.cpp's converter"
    model, pre = tokenizer.get("model") or {}, tokenizer.get("pre_tokenizer") or {}
    normalizer = tokenizer.get("normalizer") or {}
    if normalizer == {"type": "Sequence", "normalizers": []}:  # an empty sequence changes nothing
        normalizer = {}
    if model.get("type") != "BPE" or normalizer:
        return "the tokenizer is not a plain byte-level BPE (e.g. SentencePiece)"
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        return f"the tokenizer's pre-tokenizer ({pre.get('type')}) is not GPT-2's byte-level split"
    return None


def quantized_path(f16_file: str | os.PathLike, quant: str) -> Path:
    source = Path(f16_file)
    return source.with_name(f"{source.stem}-{quant.upper()}.gguf")


def llama_quantize_command(f16_file: str | os.PathLike, quant: str) -> str:
    """The llama.cpp command that turns the f16 GGUF into a type talklike does not write (k-quants)."""
    return f"llama-quantize {f16_file} {quantized_path(f16_file, quant)} {quant.upper()}"


def write_gguf(folder: str | os.PathLike, out_file: str | os.PathLike, outtype: str = "f16") -> Path:
    """Write the merged Llama model in `folder` as one GGUF file of type `outtype` (QUANTS); return its path.

    The file carries the chat template (training-only {% generation %} markers removed) and the
    end-of-turn token, so llama.cpp and Ollama know how to prompt it and when its turn is over.
    """
    folder, out = Path(folder), Path(out_file)
    status = gguf_status(folder)
    if not status["supported"]:
        raise UserError(f"gguf: {status['reason']}: {status['command']}")
    if outtype not in QUANTS:
        hint = f"; for {outtype} write f16 and run llama.cpp's llama-quantize" if outtype in K_QUANTS else ""
        raise UserError(f"gguf: type {outtype!r}; expected one of {', '.join(QUANTS)}{hint}")
    import gguf

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    temp = out.with_name(f".{out.name}.partial")
    writer = gguf.GGUFWriter(str(temp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _add_hyperparameters(writer, config, folder.name, outtype)
        _add_tokenizer(writer, folder, config["vocab_size"])
        _add_tensors(writer, folder, config, outtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(temp, out)
    except BaseException:
        writer.close()
        temp.unlink(missing_ok=True)
        raise
    return out


def _add_hyperparameters(writer, config: dict[str, Any], name: str, outtype: str) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {}
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(_file_type(outtype))


def _add_tokenizer(writer, folder: Path, vocab_size: int) -> None:
    """Tokens, types and merges as llama.cpp's converter writes a GPT-2-style BPE (its _set_vocab_gpt2)."""
    import gguf

    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {index: token for token, index in data["model"]["vocab"].items()}
    added = {entry["id"]: entry for entry in data.get("added_tokens", [])}
    tokens, types = [], []
    for index in range(vocab_size):
        if index in added:
            tokens.append(added[index]["content"])
            types.append(gguf.TokenType.CONTROL if added[index].get("special") else gguf.TokenType.USER_DEFINED)
        elif index in by_id:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
        else:  # the embedding matrix is larger than the vocabulary
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # llama.cpp's name for GPT-2's regex split, checked in unsupported_reason
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    template = chat_template_for_gguf(special.chat_template)
    special.chat_template = template
    # llama.cpp's default differs per model: say explicitly whether a BOS starts every prompt. With a
    # chat template the model trained on its rendering, which starts with BOS only if it writes one.
    bos_id = special.special_token_ids.get("bos")
    special.add_special_token["bos"] = (
        (_template_starts_with_bos(folder) if template else _adds_bos(folder, bos_id)) if bos_id is not None else False
    )
    special.add_to_gguf(writer, quiet=True)
    end_of_turn = _end_of_turn_id(data, template)
    if end_of_turn is not None:
        writer.add_eot_token_id(end_of_turn)


def chat_template_for_gguf(template: str | None) -> str | None:
    """The template without {% generation %} markers: they only mark trained tokens for TRL, render
    nothing, and llama.cpp's Jinja engine does not know them."""
    if not isinstance(template, str):
        return template
    return re.sub(r"\{%-?\s*(?:end)?generation\s*-?%\}", "", template)


def _template_starts_with_bos(folder: Path) -> bool:
    """Whether the chat template writes BOS first, which llama.cpp then adds as a token instead (the
    Modelfile's TEMPLATE leaves it out: modelfile.match_template decides both)."""
    from transformers import AutoTokenizer

    from training.export.modelfile import match_template

    return bool(match_template(AutoTokenizer.from_pretrained(folder)).bos)


# Tokens that close a chat turn in the template families talklike knows (modelfile.py).
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def _end_of_turn_id(tokenizer_json: dict, template: str | None) -> int | None:
    """The id of the special token that ends a turn in this chat template, if it has one."""
    if not template:
        return None
    added = {entry["content"]: entry["id"] for entry in tokenizer_json.get("added_tokens", [])}
    return next((added[token] for token in _END_OF_TURN if token in template and token in added), None)


def _adds_bos(folder: Path, bos_id: int | None) -> bool:
    """Whether the Hugging Face tokenizer puts BOS in front of plain text, by encoding a word."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode("hello", add_special_tokens=True).ids
    return bos_id is not None and bool(ids) and ids[0] == bos_id


def _add_tensors(writer, folder: Path, config: dict[str, Any], outtype: str) -> None:
    import gguf
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"gguf: {folder} has no .safetensors weights")
    for path in files:
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():
                target = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise UserError(f"gguf: tensor {name} has no GGUF name for Llama; use llama.cpp's converter")
                tensor = weights.get_tensor(name).float()
                if name.endswith("q_proj.weight"):
                    tensor = permute_for_rope(tensor, heads, heads)
                elif name.endswith("k_proj.weight"):
                    tensor = permute_for_rope(tensor, heads, kv_heads)
                array, kind = _quantized(tensor.numpy(), outtype, target, tied=bool(config.get("tie_word_embeddings")))
                writer.add_tensor(target, array, raw_dtype=kind)


def _file_type(outtype: str):
    import gguf

    names = {
        "f32": "ALL_F32",
        "f16": "MOSTLY_F16",
        "bf16": "MOSTLY_BF16",
        "q8_0": "MOSTLY_Q8_0",
        "q5_1": "MOSTLY_Q5_1",
        "q4_0": "MOSTLY_Q4_0",
    }
    return getattr(gguf.LlamaFileType, names[outtype])


def _quantized(array, outtype: str, name: str, tied: bool):
    """The tensor as the file type stores it, as llama.cpp's converter and llama-quantize do:
    1-D tensors (norms) stay f32; with 4/5-bit types the output layer (the embedding, when tied)
    keeps q8_0, since it decides every next token; rows not a multiple of the block size fall back to f16."""
    import gguf
    import numpy as np

    if outtype == "f32" or array.ndim < 2:
        return array.astype(np.float32), None
    if outtype == "f16":
        return array.astype(np.float16), None
    kind = getattr(gguf.GGMLQuantizationType, outtype.upper())
    if outtype in ("q5_1", "q4_0") and (name == "output.weight" or (tied and name == "token_embd.weight")):
        kind = gguf.GGMLQuantizationType.Q8_0
    try:
        return gguf.quants.quantize(array.astype(np.float32), kind), kind
    except gguf.QuantError:
        return array.astype(np.float16), None


def permute_for_rope(weights, n_head: int, n_head_kv: int):
    """Reorder Q/K rows from Hugging Face's rotate-half RoPE layout to llama.cpp's interleaved one.

    The same transform as LlamaModel.permute in llama.cpp's converter.
    """
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )
