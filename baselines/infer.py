"""Predictors: turn prompt-ready examples into the model's raw reply texts.

A :class:`Predictor` has a ``name`` (recorded with every prediction, so predictions of
different models never mix) and ``predict(examples) -> list[str]``, one raw text per
example, in order. An example is a mapping with ``question``, ``options``, ``images`` (PIL
images, low -> high magnification; empty for the blind control) and ``magnifications``.

- :class:`EndpointPredictor`: any OpenAI-compatible chat endpoint through
  :class:`curation.llm.LLMClient` (disk cache, retries, bounded concurrency); images are
  sent as base64 data URLs.
- :class:`TransformersPredictor`: a local Qwen2.5-VL-style checkpoint through
  ``transformers`` (``AutoModelForImageTextToText`` + its processor), greedy decoding.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from baselines.prompts import conversation, openai_messages, to_pil
from curation.errors import ConfigError, InputError
from curation.llm import LLMClient, LLMConfig


@runtime_checkable
class Predictor(Protocol):
    """Anything that answers MCQ examples with raw text."""

    name: str

    def predict(self, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        """One raw reply per example, in order."""
        ...


class EndpointPredictor:
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...) as a :class:`Predictor`.

    ``client``: an :class:`LLMClient` (its cache makes reruns free). ``image_format``:
    how images are re-encoded for the data URLs (``PNG``, lossless, or ``JPEG``).
    ``progress``: show the client's per-batch bar (off: the evaluator shows one bar).
    """

    def __init__(
        self, client: LLMClient, image_format: str = "PNG", progress: bool = False
    ) -> None:
        self.client = client
        self.image_format = image_format
        self.progress = progress
        self.name = client.config.model

    @classmethod
    def from_spec(
        cls, spec: str, cache_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> EndpointPredictor:
        """From ``"base_url=...,model=...[,key=value]"`` (see :meth:`LLMConfig.parse`)."""
        return cls(LLMClient(LLMConfig.parse(spec), cache_dir=cache_dir), **kwargs)

    def predict(self, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        """Ask the endpoint (cached answers are reused, never asked again)."""
        messages = [openai_messages(e, self.image_format) for e in examples]
        return self.client.chat_many(messages, desc=self.name, progress=self.progress)


def model_not_found(path: str | os.PathLike[str], exc: BaseException, what: str = "model") -> str:
    """The one-line reason a checkpoint folder or Hub id could not be loaded."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if os.path.exists(path):
        return f"{path}: cannot load the {what} from this folder ({first}); check the path"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    hint = (
        "HF_HUB_OFFLINE is set, so only the local Hub cache is searched"
        if offline
        else "check the id and the network"
    )
    return (
        f"{path}: cannot load the {what}: not found locally (no such folder) nor on the "
        f"Hugging Face Hub ({hint}); pass a checkpoint folder or a Hub model id such as "
        f"Qwen/Qwen2.5-VL-3B-Instruct ({first})"
    )


def load_image_text_model(path: str | os.PathLike[str], dtype: Any) -> Any:
    """``AutoModelForImageTextToText`` from a folder or Hub id, or a one-line InputError."""
    from transformers import AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise InputError(model_not_found(path, exc)) from None


def load_qwen_processor(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """The processor of a Qwen2.5-VL checkpoint folder or Hub id.

    Tries ``AutoProcessor`` first; where that cannot build a full processor (no
    torchvision, hence no video processor: ``AutoProcessor`` then returns only a
    tokenizer), builds ``Qwen2_5_VLProcessor`` from its image processor and tokenizer with
    the video part left out.
    """
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(path, **kwargs)
        if getattr(processor, "image_processor", None) is not None:
            return processor
    except (ImportError, OSError, ValueError, TypeError):
        pass
    from transformers import Qwen2_5_VLProcessor

    class _ImageOnlyProcessor(Qwen2_5_VLProcessor):
        """Qwen2.5-VL processor whose video processor is optional."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kw):
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            from transformers.processing_utils import ProcessorMixin

            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

        @classmethod
        def get_attributes(cls) -> list[str]:  # transformers 5: attributes from __init__
            return ["image_processor", "tokenizer"]

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        image_processor = AutoImageProcessor.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise InputError(model_not_found(path, exc, "processor")) from None
    template = getattr(tokenizer, "chat_template", None)
    return _ImageOnlyProcessor(image_processor, tokenizer, chat_template=template)


class TransformersPredictor:
    """A local vision-language model (Qwen2.5-VL family) with greedy decoding.

    ``model``: a loaded ``transformers`` model with ``generate``; ``processor``: its
    processor (image processor + tokenizer + chat template). Use :meth:`from_pretrained`
    for a checkpoint folder or Hub id.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        name: str = "local",
        max_new_tokens: int = 256,
        batch_size: int = 1,
    ) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("batch_size and max_new_tokens must be at least 1")
        self.model = model
        self.processor = processor
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], device: str | None = None, **kwargs: Any
    ) -> TransformersPredictor:
        """Load model and processor from a checkpoint folder or Hub id."""
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = load_image_text_model(path, dtype).to(device).eval()
        return cls(model, load_qwen_processor(path), name=os.path.basename(str(path)), **kwargs)

    def predict(self, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        """Greedy replies, ``batch_size`` examples per ``generate`` call."""
        import torch

        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if getattr(tokenizer, "padding_side", "left") != "left":
            tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        out: list[str] = []
        for start in range(0, len(examples), self.batch_size):
            batch = examples[start : start + self.batch_size]
            texts = [
                self.processor.apply_chat_template(
                    conversation(e), tokenize=False, add_generation_prompt=True
                )
                for e in batch
            ]
            images = [to_pil(img).convert("RGB") for e in batch for img in e.get("images") or []]
            inputs = self.processor(
                text=texts, images=images or None, return_tensors="pt", padding=True
            ).to(self.model.device)
            with torch.no_grad():
                generated = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
                )
            new = generated[:, inputs["input_ids"].shape[1] :]
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
        return out
