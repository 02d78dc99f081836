"""Instruction templates per use case, kept as data.

Lychee is instruction-aware: the same query and document score differently under
"retrieve passages that answer the query" and "retrieve product images that match".
This module holds named templates (loaded from the package's ``templates.json``),
lets users register their own or load them from a JSON file, and resolves the
``task=`` / ``instruction=`` pair that every entry point accepts.

Example:
    >>> from lychee_integrations.instructions import register_template, resolve_instruction
    >>> _ = register_template("legal", "Given a legal question, retrieve the statutes that apply")
    >>> resolve_instruction(task="legal")
    'Given a legal question, retrieve the statutes that apply'

"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.recipes.lychee import LYCHEE

__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_TASK",
    "InstructionRegistry",
    "InstructionTemplate",
    "default_registry",
    "get_template",
    "list_templates",
    "register_template",
    "resolve_instruction",
]

#: Lychee's default instruction (its recipe's; each family's default lives in its recipe).
DEFAULT_INSTRUCTION = LYCHEE.default_instruction
#: The template whose instruction is :data:`DEFAULT_INSTRUCTION`.
DEFAULT_TASK = "web_search"


@dataclass(frozen=True)
class InstructionTemplate:
    """A named instruction for one use case.

    Attributes:
        name: Registry key, e.g. ``"product_search"``.
        instruction: The text rendered after ``<Instruct>: `` in the prompt, byte for byte.
        description: One line for humans (CLI listings, the web page's presets).

    Example:
        >>> InstructionTemplate("faq", "Given a question, retrieve the FAQ entry that answers it").name
        'faq'

    """

    name: str
    instruction: str
    description: str = ""


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(f"{what} holds {value[exc.start]!r}, which is not valid Unicode text") from None
    return value


def _make_template(name: object, instruction: object, description: object) -> InstructionTemplate:
    name = _check_text(name, "template name")
    if not all(c.isalnum() or c in "_-" for c in name):
        raise ConfigurationError(f"template name {name!r} may only hold letters, digits, '_' and '-'")
    _check_text(instruction, f"instruction of template {name!r}")
    if not isinstance(description, str):
        raise ConfigurationError(f"description of template {name!r} must be a string, got {description!r}")
    return InstructionTemplate(name, str(instruction), description.strip())


def _parse_entries(data: object) -> list[InstructionTemplate]:
    if not isinstance(data, Mapping):
        raise ConfigurationError("templates must be a JSON object of name -> template")
    templates = []
    for name, entry in data.items():
        if isinstance(entry, str):
            entry = {"instruction": entry}
        if not isinstance(entry, Mapping) or "instruction" not in entry or set(entry) - {"instruction", "description"}:
            raise ConfigurationError(
                f"template {name!r} must be a string or an object with 'instruction' and "
                f"optional 'description', got {entry!r}"
            )
        templates.append(_make_template(name, entry["instruction"], entry.get("description", "")))
    return templates


class InstructionRegistry:
    """A thread-safe, ordered collection of :class:`InstructionTemplate`.

    Args:
        templates: Templates to start with, registered in order.

    Raises:
        ConfigurationError: If a starting template is invalid or two share a name.

    Example:
        >>> registry = InstructionRegistry()
        >>> registry.register("faq", "Given a question, retrieve the FAQ entry that answers it").name
        'faq'
        >>> registry.names()
        ['faq']

    """

    def __init__(self, templates: Iterable[InstructionTemplate] | None = None) -> None:
        self._lock = threading.Lock()
        self._templates: dict[str, InstructionTemplate] = {}
        for template in templates or []:
            self.register(template.name, template.instruction, template.description)

    def _lookup(self, name: str, *, remove: bool) -> InstructionTemplate:
        with self._lock:
            template = self._templates.pop(name, None) if remove else self._templates.get(name)
            known = list(self._templates)
        if template is None:
            listing = ", ".join(known) if known else "(none registered)"
            raise ConfigurationError(
                f"unknown task template {name!r}; known templates: {listing}. "
                "Register your own with register_template(name, instruction) or pass instruction=..."
            )
        return template

    def _add(self, templates: list[InstructionTemplate], overwrite: bool) -> None:
        names = [t.name for t in templates]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigurationError(f"template name(s) given more than once: {', '.join(repeated)}")
        with self._lock:
            taken = [n for n in names if n in self._templates]
            if taken and not overwrite:
                raise ConfigurationError(
                    f"template(s) {', '.join(map(repr, taken))} already registered; pass overwrite=True to replace them"
                )
            for template in templates:
                self._templates[template.name] = template

    def register(
        self, name: str, instruction: str, description: str = "", *, overwrite: bool = False
    ) -> InstructionTemplate:
        """Add a template.

        Args:
            name: Registry key: letters, digits, ``_`` and ``-``.
            instruction: The instruction text (used byte for byte in the prompt).
            description: Optional one-line description.
            overwrite: Replace an existing template of the same name instead of failing.

        Returns:
            The registered template.

        Raises:
            ConfigurationError: On an invalid name or text, or a name already taken
                while ``overwrite`` is false.

        Example:
            >>> registry = InstructionRegistry()
            >>> registry.register("recipes", "Given a dish, retrieve recipes that cook it").instruction
            'Given a dish, retrieve recipes that cook it'

        """
        template = _make_template(name, instruction, description)
        self._add([template], overwrite)
        return template

    def unregister(self, name: str) -> InstructionTemplate:
        """Remove the template called ``name`` and return it.

        Raises:
            ConfigurationError: If no such template exists; the message lists the known names.

        Example:
            >>> registry = InstructionRegistry([InstructionTemplate("a", "Given a, retrieve b")])
            >>> registry.unregister("a").name, registry.names()
            ('a', [])

        """
        return self._lookup(name, remove=True)

    def get(self, name: str) -> InstructionTemplate:
        """Return the template called ``name``.

        Raises:
            ConfigurationError: If no such template exists; the message lists the known names.

        Example:
            >>> default_registry.get("web_search").instruction == DEFAULT_INSTRUCTION
            True

        """
        return self._lookup(name, remove=False)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._templates

    def names(self) -> list[str]:
        """Return the registered names, in registration order."""
        with self._lock:
            return list(self._templates)

    def templates(self) -> list[InstructionTemplate]:
        """Return all templates, in registration order."""
        with self._lock:
            return list(self._templates.values())

    def load_json(self, source: str | Path | Mapping[str, Any], *, overwrite: bool = False) -> list[str]:
        """Register every template of a mapping ``{name: {"instruction": ..., "description": ...}}``.

        A value may also be a plain string (the instruction). Either every template is
        registered or, on any error, none is.

        Args:
            source: A path to a JSON file, or the already parsed mapping.
            overwrite: Replace templates that already exist.

        Returns:
            The names registered, in file order.

        Raises:
            ConfigurationError: If the file cannot be read, an entry is malformed, or a
                name is taken while ``overwrite`` is false.

        Example:
            >>> InstructionRegistry().load_json({"faq": "Given a question, retrieve the FAQ entry"})
            ['faq']

        """
        if isinstance(source, Mapping):
            data: object = source
        else:
            try:
                data = json.loads(Path(source).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"cannot read templates from {source}: {exc}") from exc
        templates = _parse_entries(data)
        self._add(templates, overwrite)
        return [t.name for t in templates]

    def resolve(self, task: str | None = None, instruction: str | None = None) -> str:
        """Turn a ``task`` name or a free ``instruction`` into the instruction text.

        Args:
            task: A registered template name.
            instruction: Free instruction text.

        Returns:
            The instruction; :data:`DEFAULT_INSTRUCTION` when both are ``None``.

        Raises:
            ConfigurationError: If both are given, either is empty, or ``task`` is unknown.

        Example:
            >>> default_registry.resolve(instruction="Given a bug report, retrieve the fix")
            'Given a bug report, retrieve the fix'

        """
        if task is not None and instruction is not None:
            raise ConfigurationError("give either task (a template name) or instruction (free text), not both")
        if task is not None:
            return self.get(_check_text(task, "task")).instruction
        if instruction is not None:
            return _check_text(instruction, "instruction")
        return DEFAULT_INSTRUCTION


#: The process-wide registry used when no other is given.
default_registry = InstructionRegistry()
default_registry.load_json(
    json.loads(resources.files("lychee_integrations").joinpath("templates.json").read_text(encoding="utf-8"))
)


def register_template(
    name: str, instruction: str, description: str = "", *, overwrite: bool = False
) -> InstructionTemplate:
    """Register a template in :data:`default_registry`, for every adapter in the process.

    Args:
        name: Registry key: letters, digits, ``_`` and ``-``.
        instruction: The instruction text.
        description: Optional one-line description.
        overwrite: Replace an existing template of the same name.

    Returns:
        The registered template.

    Raises:
        ConfigurationError: See :meth:`InstructionRegistry.register`.

    Example:
        >>> _ = register_template("bugs", "Given a bug report, retrieve the commits that fix it")
        >>> get_template("bugs").instruction
        'Given a bug report, retrieve the commits that fix it'

    """
    return default_registry.register(name, instruction, description, overwrite=overwrite)


def get_template(name: str) -> InstructionTemplate:
    """Look a template up in :data:`default_registry`.

    Raises:
        ConfigurationError: Unknown name; the message lists the known ones.

    Example:
        >>> get_template("product_search").name
        'product_search'

    """
    return default_registry.get(name)


def list_templates() -> list[InstructionTemplate]:
    """Return the templates of :data:`default_registry`, in registration order.

    Example:
        >>> list_templates()[0].name
        'web_search'

    """
    return default_registry.templates()


def resolve_instruction(task: str | None = None, instruction: str | None = None) -> str:
    """Resolve ``task``/``instruction`` against :data:`default_registry`.

    Args:
        task: A registered template name.
        instruction: Free instruction text.

    Returns:
        The instruction text; the recipe's default when both are ``None``.

    Raises:
        ConfigurationError: See :meth:`InstructionRegistry.resolve`.

    Example:
        >>> resolve_instruction() == DEFAULT_INSTRUCTION
        True

    """
    return default_registry.resolve(task, instruction)
