"""Loading the checkpoint and the forward pass that reads only what the score needs."""

from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lychee_integrations._deps import require
from lychee_integrations.config import RerankerConfig
from lychee_integrations.engine.caches import BoundedCache, tensor_bytes
from lychee_integrations.engine.checkpoint import RANDOM_MARKER, check_available
from lychee_integrations.engine.pairs import EncodedPair, ImageFeatures
from lychee_integrations.engine.prefix import image_spans, reusable_length
from lychee_integrations.engine.prefix_attention import PREFIX_KEYWORD
from lychee_integrations.engine.prefix_attention import install as install_prefix_attention
from lychee_integrations.engine.processor import load_processor
from lychee_integrations.engine.shortcuts import ReadPositions, linear_patch_embedding
from lychee_integrations.errors import ConfigurationError
from lychee_integrations.recipes import Recipe, get_recipe, recipe_for


class ImageCache:
    """Visual embeddings of the images several pairs share (the query's), for one run of pairs.

    Only images that occur in more than one pair are kept, so a query image goes through
    the vision tower once per run while document images are not held after their batch.
    Keys are ``id`` of :class:`ImageFeatures` objects, which the pairs keep alive.
    """

    def __init__(self, pairs: Sequence[EncodedPair]) -> None:
        counts = Counter(id(f) for pair in pairs for f in pair.images)
        self.shared = {key for key, count in counts.items() if count > 1}
        self.embeddings: dict[int, Any] = {}


@dataclass(frozen=True)
class PrefixState:
    """A shared prefix run once: its length, how many of its pairs' images it holds, its KV cache."""

    length: int
    n_images: int
    cache: Any


__all__ = ["ImageCache", "LoadedModel", "PrefixState", "free_device_memory", "is_out_of_memory"]

logger = logging.getLogger(__name__)


#: How allocators word running out: CUDA and MPS ("out of memory"), torch's CPU allocator.
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error of a device or of the CPU allocator."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)


def _resolve_device(torch: Any, requested: str) -> str:
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"device={requested!r} was requested but CUDA is not available; use device='cpu'")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError("device='mps' was requested but MPS is not available; use device='cpu'")
    return requested


def _resolve_dtype(torch: Any, requested: str, device: str) -> Any:
    if requested == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, requested)


def _resolve_attention(requested: str, device: str, dtype: Any) -> str:
    import importlib.util

    import torch

    has_flash = importlib.util.find_spec("flash_attn") is not None
    fits = device.startswith("cuda") and dtype in (torch.bfloat16, torch.float16)
    if requested == "flash_attention_2":
        if not has_flash:
            raise ConfigurationError(
                "attn_implementation='flash_attention_2' needs flash-attn: pip install 'lychee-integrations[gpu]'"
            )
        if not fits:
            raise ConfigurationError("flash_attention_2 needs a CUDA device and dtype bfloat16 or float16")
    elif requested == "auto":
        return "flash_attention_2" if has_flash and fits else "sdpa"
    return requested


def _single_token(tokenizer: Any, word: str, recipe: Recipe) -> int:
    token_id = tokenizer.convert_tokens_to_ids(word)
    ids = tokenizer.encode(word, add_special_tokens=False)
    if token_id is None or ids != [token_id] or token_id == tokenizer.unk_token_id:
        raise ConfigurationError(
            f"the tokenizer does not hold {word!r} as a single token; not a {recipe.name} reranker checkpoint"
        )
    return int(token_id)


class LoadedModel:
    """A loaded checkpoint with its processor and the yes/no scoring head.

    Only ``(W[yes] - W[no])`` of the LM head is kept for scoring: the score is
    ``sigmoid((W[yes] - W[no]) . h_last)``, identical to the softmax over the two logits,
    without computing the 152k-wide logits.
    """

    def __init__(self, config: RerankerConfig) -> None:
        import torch
        import transformers

        self.config = config
        self.device = _resolve_device(torch, config.device)
        self.dtype = _resolve_dtype(torch, config.dtype, self.device)
        hub = config.hub_options()
        check_available(
            config.model, revision=config.revision, cache_dir=config.cache_dir, local_files_only=config.local_files_only
        )
        try:
            model_config = transformers.AutoConfig.from_pretrained(config.model, **hub)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot load model {config.model!r}: {exc}. Give a local checkpoint directory, or a hub id "
                "with network access (build an offline one with `lychee build-tiny PATH`)"
            ) from exc
        #: Whether the checkpoint holds random weights (``lychee build-tiny``): its rankings mean nothing.
        self.random_weights = bool(getattr(model_config, RANDOM_MARKER, False))
        if config.recipe is not None:
            self.recipe = get_recipe(config.recipe)
        else:
            try:
                self.recipe = recipe_for(model_config.model_type)
            except ConfigurationError as exc:
                raise ConfigurationError(f"model {config.model!r}: {exc}") from exc
        self.max_length, self.min_pixels, self.max_pixels = config.limits(self.recipe)
        #: Most padded tokens per forward pass (``config.max_batch_tokens`` or the device's default).
        self.max_batch_tokens = config.batch_tokens(self.device)
        self.attn_implementation = _resolve_attention(config.attn_implementation, self.device, self.dtype)
        kwargs: dict[str, Any] = {"dtype": self.dtype, "attn_implementation": self.attn_implementation, **hub}
        if config.quantization is not None:
            require("bitsandbytes", "quantization")
            if not self.device.startswith("cuda"):
                raise ConfigurationError(f"quantization={config.quantization!r} needs a CUDA device")
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=config.quantization == "4bit",
                load_in_8bit=config.quantization == "8bit",
                bnb_4bit_compute_dtype=self.dtype,
            )
            kwargs["device_map"] = {"": self.device}
        self.processor = load_processor(config.model, min_pixels=self.min_pixels, max_pixels=self.max_pixels, **hub)
        model_class = getattr(transformers, self.recipe.model_class)
        model: Any = model_class.from_pretrained(config.model, **kwargs)
        if config.quantization is None:
            model = model.to(self.device)
        self.model = model.eval()
        tokenizer = self.processor.tokenizer
        self.yes_id = _single_token(tokenizer, self.recipe.yes_token, self.recipe)
        self.no_id = _single_token(tokenizer, self.recipe.no_token, self.recipe)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.image_token_id = int(model.config.image_token_id)
        #: Seconds spent in the vision tower since loading (stage times at DEBUG level).
        self.vision_seconds = 0.0
        #: Seconds spent waiting for image patches (made in a pool, or here when not prefetched).
        self.image_wait_seconds = 0.0
        #: Keys and values of prompt prefixes by token ids and image keys, across calls
        #: (``config.prefix_cache_bytes``): entries ``(ids, image keys, [(keys, values) per layer])``.
        self.prefix_cache: BoundedCache[Any] | None = (
            BoundedCache("prefix", max_bytes=config.prefix_cache_bytes, size_of=lambda e: tensor_bytes(e[2]))
            if config.prefix_cache_bytes
            else None
        )
        #: Vision-tower outputs by image content key, across calls (``config.vision_cache_bytes``).
        self.vision_cache: BoundedCache[Any] | None = (
            BoundedCache("vision", max_bytes=config.vision_cache_bytes, size_of=lambda e: tensor_bytes(e[:2]))
            if config.vision_cache_bytes
            else None
        )
        #: How this transformers version's forward takes a key/value cache (``cache`` from 5.2x,
        #: ``past_key_values`` before); ``None`` turns prefix reuse off rather than let a cache be ignored.
        parameters = inspect.signature(model.model.forward).parameters
        self.cache_keyword = next((name for name in ("cache", "past_key_values") if name in parameters), None)
        #: Whether prefix groups read the prefix once for all rows (:mod:`.prefix_attention`; CPU only)
        #: rather than copying its keys and values into every row.
        self.merged_prefix_attention = config.prefix_reuse and install_prefix_attention(self.model)
        #: The last layer's MLP runs only where the score reads (:mod:`.shortcuts`).
        self.read_positions = ReadPositions(model.model.language_model)
        linear_patch_embedding(model)
        head = model.get_output_embeddings()
        with torch.no_grad():
            self.w_diff = (head.weight[self.yes_id].float() - head.weight[self.no_id].float()).to(self.device)
            bias = getattr(head, "bias", None)
            self.b_diff = float(bias[self.yes_id] - bias[self.no_id]) if bias is not None else 0.0
        logger.info(
            "loaded %s (recipe %s) on %s (%s, attention %s%s)",
            config.model,
            self.recipe.name,
            self.device,
            str(self.dtype).removeprefix("torch."),
            self.attn_implementation,
            f", {config.quantization}" if config.quantization else "",
        )

    def score_batch(self, pairs: Sequence[EncodedPair], image_cache: ImageCache | None = None) -> list[float]:
        """Score a batch of encoded pairs in one forward pass (left padding, last position).

        Args:
            pairs: The encoded pairs.
            image_cache: Embeddings of images shared between pairs, reused across the
                batches of one run (see :class:`ImageCache`).

        """
        import torch

        rows = len(pairs)
        width = max(len(p) for p in pairs)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, pair in enumerate(pairs):
            input_ids[row, width - len(pair) :] = torch.tensor(pair.input_ids, dtype=torch.long)
            attention_mask[row, width - len(pair) :] = 1
        images = [features for pair in pairs for features in pair.images]
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        inputs: dict[str, Any] = {}
        with torch.inference_mode():
            if images:
                inputs["mm_encoder_outputs"] = {"image": self._image_embeddings(images, image_cache)}
                position_ids = self._rope_index(input_ids, images, attention_mask)
            else:
                position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            with self.read_positions.only(torch.full((rows,), width - 1, device=self.device)):
                hidden = self.model.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    use_cache=False,
                    **inputs,
                ).last_hidden_state[:, -1, :]
            logits = hidden.float() @ self.w_diff + self.b_diff
            return [float(v) for v in torch.sigmoid(logits).cpu()]

    def _image_embeddings(self, images: Sequence[ImageFeatures], cache: ImageCache | None) -> Any:
        """Run the vision tower once per distinct image (equal content keys share one run) not cached."""
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        known = cache.embeddings if cache is not None else {}
        embeddings = {id(f): known[id(f)] for f in images if id(f) in known}
        vision_cache = self.vision_cache
        # Distinct images not yet embedded: equal content keys count once.
        todo: dict[object, list[ImageFeatures]] = {}
        for f in images:
            if id(f) not in embeddings:
                group = todo.setdefault(f.key if f.key is not None else id(f), [])
                if all(g is not f for g in group):
                    group.append(f)
        if vision_cache is not None:
            for content in [k for k in todo if isinstance(k, bytes)]:
                hit = vision_cache.get(content)
                if hit is not None:
                    for f in todo.pop(content):
                        embeddings[id(f)] = hit
        if todo:
            first = [group[0] for group in todo.values()]
            started = time.perf_counter()
            pixels = [f.pixel_values for f in first]
            self.image_wait_seconds += time.perf_counter() - started
            started = time.perf_counter()
            out = self.model.model.get_image_features(
                torch.cat(pixels).to(self.device),
                torch.cat([f.grid_thw for f in first]).to(self.device),
            )
            if self.device.startswith("cuda") and logger.isEnabledFor(logging.DEBUG):
                torch.cuda.synchronize()  # only for exact stage times
            self.vision_seconds += time.perf_counter() - started
            # Qwen3-VL also returns "deepstack" features: per layer, a tuple of per-image tensors.
            deepstack = getattr(out, "deepstack_features", None)
            for n, (group, embedding) in enumerate(zip(todo.values(), out.pooler_output, strict=True)):
                layers = None if deepstack is None else tuple(layer[n] for layer in deepstack)
                entry = (embedding, layers, type(out))
                image_key = group[0].key
                if vision_cache is not None and image_key is not None:
                    # Own the memory (not a view of the batch's output), so the bound counts what is held.
                    entry = (embedding.clone(), None if layers is None else tuple(t.clone() for t in layers), type(out))
                    vision_cache.put(image_key, entry)
                for f in group:
                    embeddings[id(f)] = entry
                    if cache is not None and id(f) in cache.shared:
                        cache.embeddings[id(f)] = entry
        # The model's forward concatenates a per-image tuple, as get_image_features returns it.
        entries = [embeddings[id(f)] for f in images]
        pooled = tuple(entry[0] for entry in entries)
        if entries[0][1] is None:
            return BaseModelOutputWithPooling(pooler_output=pooled)  # type: ignore[arg-type]
        per_layer = [tuple(entry[1][layer] for entry in entries) for layer in range(len(entries[0][1]))]
        return entries[0][2](pooler_output=pooled, deepstack_features=per_layer)

    def _rope_index(self, ids: Any, images: Sequence[ImageFeatures], attention_mask: Any) -> Any:
        """Return positions by the model's own ``get_rope_index`` (the checkpoint's own scheme)."""
        import torch

        grid = torch.cat([f.grid_thw for f in images]).to(self.device)
        mm_token_type_ids = (ids == self.image_token_id).int()
        return self.model.model.get_rope_index(
            ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid, attention_mask=attention_mask
        )[0]

    def _positions(self, input_ids: Sequence[int], images: Sequence[ImageFeatures]) -> Any:
        """Return the rotary positions of one whole, unpadded sequence, as ``(3, length)``."""
        import torch

        if not images:
            return torch.arange(len(input_ids), device=self.device).expand(3, -1)
        ids = torch.tensor([input_ids], dtype=torch.long, device=self.device)
        return self._rope_index(ids, images, torch.ones_like(ids))[:, 0, :]

    def run_prefix(self, pair: EncodedPair, length: int, image_cache: ImageCache | None = None) -> PrefixState:
        """Run the first ``length`` tokens of ``pair`` once and keep their key/value cache.

        With the prefix cache on (``prefix_cache_bytes``), the longest start of the prefix an
        earlier call ran (same token ids and image contents, e.g. the system prompt and
        instruction) is taken from it and only the rest runs; the prefix is then stored there.

        Args:
            pair: Any pair of the group (all share these tokens and images).
            length: The shared prefix's length, from :func:`~lychee_integrations.engine.prefix.group_by_prefix`.
            image_cache: Embeddings of shared images (see :class:`ImageCache`).

        Returns:
            What :meth:`score_suffix` needs to score the group's pairs against the prefix.

        """
        import torch
        from transformers import DynamicCache

        spans = image_spans(pair.input_ids, self.image_token_id)
        n_images = sum(1 for _, end in spans if end <= length)
        ids = tuple(pair.input_ids[:length])
        keys = tuple(f.key for f in pair.images[:n_images])
        positions = self._positions(pair.input_ids, pair.images)[:, :length].unsqueeze(1)
        start, cache = 0, DynamicCache()
        store = self.prefix_cache if all(key is not None for key in keys) else None
        if store is not None:
            # Entries are (ids, image keys, layers): how many first tokens of ``ids`` each holds.
            found = store.best(lambda _, entry: reusable_length(ids, keys, entry[0], entry[1], self.image_token_id))
            if found is not None:
                (_, _, layers), start = found
                cache = DynamicCache(ddp_cache_data=[(k[:, :, :start], v[:, :, :start]) for k, v in layers])
        images = [f for f, (begin, _) in zip(pair.images[:n_images], spans, strict=False) if begin >= start]
        if start == length:  # the whole prefix was cached
            return PrefixState(length=length, n_images=n_images, cache=cache)
        inputs: dict[str, Any] = {}
        with torch.inference_mode(), self.read_positions.only(None):
            if images:
                inputs["mm_encoder_outputs"] = {"image": self._image_embeddings(images, image_cache)}
            self.model.model(
                input_ids=torch.tensor([ids[start:]], dtype=torch.long, device=self.device),
                attention_mask=torch.ones((1, length), dtype=torch.long, device=self.device),
                position_ids=positions[..., start:],
                use_cache=True,
                **{self.cache_keyword or "cache": cache},
                **inputs,
            )
        if store is not None:
            layers = [(layer.keys, layer.values) for layer in cache.layers]  # type: ignore[union-attr]
            store.put((ids, keys), (ids, keys, layers))
        return PrefixState(length=length, n_images=n_images, cache=cache)

    def score_suffix(
        self, pairs: Sequence[EncodedPair], prefix: PrefixState, image_cache: ImageCache | None = None
    ) -> list[float]:
        """Score pairs that share ``prefix``, running only their remaining tokens.

        The suffixes are right-padded after the prefix (padding never sits inside it), each
        row keeps the positions its whole sequence would have, and each row's score is read
        at its own last real token.

        Args:
            pairs: Pairs of one prefix group.
            prefix: From :meth:`run_prefix` on the same group.
            image_cache: Embeddings of shared images (see :class:`ImageCache`).

        """
        import torch
        from transformers import DynamicCache

        rows, start = len(pairs), prefix.length
        width = max(len(p) for p in pairs) - start
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, start + width), dtype=torch.long)
        mask[:, :start] = 1
        positions = torch.zeros((3, rows, width), dtype=torch.long, device=self.device)
        images: list[ImageFeatures] = []
        for row, pair in enumerate(pairs):
            n = len(pair) - start
            input_ids[row, :n] = torch.tensor(pair.input_ids[start:], dtype=torch.long)
            mask[row, start : start + n] = 1
            full = self._positions(pair.input_ids, pair.images)[:, start:]
            positions[:, row, :n] = full
            positions[:, row, n:] = full[:, -1:] + 1
            images.extend(pair.images[prefix.n_images :])
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        inputs: dict[str, Any] = {}
        if self.merged_prefix_attention and start >= width:
            # The prefix is read once for all rows; the suffixes attend causally, without a mask.
            # (Measured on the CPU: worth it when the prefix is the longer part, as under an image
            # query or a long instruction; behind long suffixes, copying a short prefix is cheaper.)
            inputs[PREFIX_KEYWORD] = [(layer.keys, layer.values) for layer in prefix.cache.layers]
            inputs["attention_mask"], inputs["use_cache"] = torch.ones_like(mask[:, start:]), False
        else:
            expanded = [
                (layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1))
                for layer in prefix.cache.layers
            ]
            inputs[self.cache_keyword or "cache"] = DynamicCache(ddp_cache_data=expanded)
            inputs["attention_mask"], inputs["use_cache"] = mask, True
        last = torch.tensor([len(p) - start - 1 for p in pairs], device=self.device)
        with torch.inference_mode(), self.read_positions.only(last):
            if images:
                inputs["mm_encoder_outputs"] = {"image": self._image_embeddings(images, image_cache)}
            hidden = self.model.model(input_ids=input_ids, position_ids=positions, **inputs).last_hidden_state
            picked = hidden[torch.arange(rows, device=self.device), last]
            logits = picked.float() @ self.w_diff + self.b_diff
            return [float(v) for v in torch.sigmoid(logits).cpu()]

    def free_memory(self) -> None:
        """Release cached device memory (after an out-of-memory error)."""
        free_device_memory(self.device)


def free_device_memory(device: str) -> None:
    """Collect garbage and release the allocator's cached memory on ``device``."""
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()
