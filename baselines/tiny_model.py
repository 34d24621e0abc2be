"""A tiny, randomly initialised Qwen2.5-VL checkpoint built offline (``scale-vqa tiny-model``).

About 0.2 M parameters, a few-hundred-token byte-level BPE with Qwen's chat and vision
special tokens, trl's Qwen2.5-VL chat template and a PIL image processor with a small
``max_pixels``; builds and saves in well under a second. It answers at random: it exists
so that training, evaluation and the tests run on any CPU machine with no download.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from curation.errors import InputError


def make_tiny_model(out: str | os.PathLike[str]) -> Path:
    """Write the tiny model into ``out`` (a new or empty folder), atomically.

    Raises :class:`InputError` when ``out`` exists and is not empty.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"{out}: already exists and is not empty; remove it or choose another folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        build_tiny_qwen(scratch)
        if out.exists():
            out.rmdir()
        os.replace(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def build_tiny_qwen(out: Path) -> Path:
    """A randomly initialised ~0.2 M-parameter Qwen2.5-VL checkpoint, built offline."""
    import torch
    import trl
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
               "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]  # fmt: skip
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["Question: Which findings? Options: A. B. C. D. <answer>A</answer>"
                             " user assistant image magnification"] * 10, trainer)  # fmt: skip
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.chat_template = (
        Path(trl.__file__).parent / "chat_templates" / "qwen2_5_vl.jinja"
    ).read_text()
    ids = {t: tok.convert_tokens_to_ids(t) for t in special}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
            fullatt_block_indexes=[1], window_size=56,
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56).save_pretrained(out)
    return out
