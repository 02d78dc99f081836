"""The install instructions match pyproject.toml: every extra the docs name exists, and `[all]` runs the examples."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
#: `pip install -e '.[a,b]'`, `lychee-integrations[a]`, `....whl[a]`, `/src[a]`.
NAMED = re.compile(r"(?:\.|lychee-integrations|\.whl|/src)\[([a-z0-9,-]+)\]")
#: An extra in backticks, `[a]`, in a paragraph that speaks of extras.
BRACKETED = re.compile(r"`\[([a-z0-9-]+)\]`")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def closure(extra: str) -> set[str]:
    """The distributions an extra installs, its own extras' included (the base install too)."""
    names = {_name(r) for r in PROJECT["dependencies"]}
    for requirement in EXTRAS[extra]:
        nested = re.fullmatch(r"lychee-integrations\[([a-z0-9,-]+)\]", requirement)
        if nested:
            for inner in nested[1].split(","):
                names |= closure(inner)
        else:
            names.add(_name(requirement))
    return names


def test_every_extra_the_docs_name_exists() -> None:
    named: dict[str, set[str]] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        found = [m[1] for m in NAMED.finditer(text)]
        for paragraph in text.split("\n\n"):
            if "extra" in paragraph.lower():
                found += [m[1] for m in BRACKETED.finditer(paragraph)]
        for extra in (name for names in found for name in names.split(",")):
            named.setdefault(extra, set()).add(page.name)
    assert {"engine", "server", "ui", "all", "dev"} <= set(named)  # the scan finds them
    unknown = {extra: pages for extra, pages in named.items() if extra not in EXTRAS}
    assert unknown == {}, f"extras named in the docs but not in pyproject.toml: {unknown}"


def test_install_md_lists_every_extra_with_what_it_holds() -> None:
    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (.*?) \|", text, re.MULTILINE))
    assert set(rows) == set(EXTRAS)
    for extra, holds in rows.items():
        for requirement in EXTRAS[extra]:
            nested = re.fullmatch(r"lychee-integrations\[([a-z0-9,-]+)\]", requirement)
            for name in nested[1].split(",") if nested else [_name(requirement)]:
                assert name in holds, (extra, name, holds)


def test_no_page_installs_the_unpublished_name_without_saying_so() -> None:
    """Until it is published, `pip install 'lychee-integrations[...]'` fails: the docs install from a checkout."""
    for page in PAGES:
        for paragraph in page.read_text(encoding="utf-8").split("\n\n"):
            if re.search(r"pip install[^#`]*lychee-integrations\[", paragraph):
                assert "published" in paragraph, (page.name, paragraph)


def test_readme_command_one_extra_runs_every_example() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    extra = re.search(r"# 1\..*\n.*pip install -q -e '\.\[([a-z-]+)\]'", readme)
    assert extra is not None and extra[1] == "all"
    installed = closure(extra[1])
    distributions = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    for example in sorted((ROOT / "examples").glob("*.py")):
        tree = ast.parse(example.read_text(encoding="utf-8"))
        modules = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        modules |= {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        for module in sorted(modules - stdlib - {"lychee_integrations", "_common", "__future__"}):
            provided = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
            assert provided & installed, (example.name, module, provided)


def test_the_container_recipe_copies_what_exists() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    [dockerfile] = re.findall(r"```dockerfile\n(.*?)```", deploy, flags=re.S)
    for sources in re.findall(r"^COPY (.+) /src/?\S*$", dockerfile, flags=re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    assert "pip install --no-cache-dir '/src[server]'" in dockerfile
