"""The ``lychee`` command: rerank from the shell, list templates, build a test checkpoint, serve.

Examples::

    lychee build-tiny ./tiny-lychee                    # an offline test checkpoint
    lychee rerank --model ./tiny-lychee --query "a cat" --doc "a cat on a mat" --doc-image cat.png
    lychee rerank --task product_search --query "red shoes" --docs-file candidates.jsonl --top-n 5 --json
    lychee templates
    lychee serve --port 8000 --image-root /srv/images
    lychee ui --with-api

Bad arguments exit with status 2 and a message naming the argument; ``lychee CMD --help``
explains every option.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from lychee_integrations.cli.documents import UsageError
from lychee_integrations.cli.parser import build_parser
from lychee_integrations.errors import ConfigurationError, LycheeError, MissingDependencyError, ModelUnavailableError

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


#: Exit status when the model cannot be had here (no such directory; not cached and no Hub).
MODEL_UNAVAILABLE = 3
#: Exit status when the reader of stdout went away (``lychee rerank --json | head -1``): not an error.
CLOSED_PIPE = 0

_OPTION_NAMES = {"device": "--device", "dtype": "--dtype", "max_length": "--max-length", "batch_size": "--batch-size"}
#: The library's messages speak Python (``device='cpu'``, ``register_template(...)``); these say it with options.
_PHRASES = {
    "Register your own with register_template(name, instruction) or pass instruction=...": (
        "Or give a free instruction with --instruction TEXT."
    ),
    " (or score on a server: RemoteReranker / base_url=)": "",
    "lower max_pixels, raise max_length or send smaller images": "raise --max-length or send smaller images",
    "lower max_length or max_pixels": "lower --max-length or send smaller images",
}
_ARGUMENT = re.compile(r"\b(" + "|".join(_OPTION_NAMES) + r")=(?:'([^']*)'|([^\s,;)]+))")


def cli_wording(message: str) -> str:
    """Say a library message in the command's words: option names instead of Python arguments and calls.

    Example:
        >>> cli_wording("device='cuda' was requested but CUDA is not available; use device='cpu'")
        '--device cuda was requested but CUDA is not available; use --device cpu'

    """
    for phrase, replacement in _PHRASES.items():
        message = message.replace(phrase, replacement)
    return _ARGUMENT.sub(lambda m: f"{_OPTION_NAMES[m[1]]} {m[2] if m[2] is not None else m[3]}", message)


def _option_error(exc: ConfigurationError) -> str:
    """Name the option a configuration error is about, where the message lets us tell."""
    message = cli_wording(str(exc))
    if message.startswith("cannot load model"):
        return f"argument --model: {message}"
    for name, option in _OPTION_NAMES.items():
        if message.startswith((f"{option} ", f"{name} ")):
            return f"argument {option}: {message}"
    return message


def _fail(parser: argparse.ArgumentParser, args: argparse.Namespace, message: str) -> NoReturn:
    command_parser = getattr(args, "command_parser", None)
    (command_parser if isinstance(command_parser, argparse.ArgumentParser) else parser).error(cli_wording(message))


def _say(args: argparse.Namespace, message: str) -> None:
    print(f"lychee {args.command}: {cli_wording(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lychee`` command.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success (also when the reader of the output stops reading, as
        ``head`` does), 2 for bad arguments or inputs (with a message naming them), 3 when the
        model cannot be had here, 1 for other failures (a missing extra, a model that fails to
        run), 130 when interrupted.

    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:  # drop what is left unwritten, quietly (no traceback at exit)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return CLOSED_PIPE
    except UsageError as exc:
        _fail(parser, args, str(exc))
    except MissingDependencyError as exc:
        _say(args, str(exc))
        return 1
    except ModelUnavailableError as exc:
        _say(args, str(exc))
        return MODEL_UNAVAILABLE
    except ConfigurationError as exc:
        _fail(parser, args, _option_error(exc))
    except LycheeError as exc:
        _say(args, f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logger.debug("lychee %s failed", args.command, exc_info=True)
        _say(args, f"error: {type(exc).__name__}: {exc} (run with -vv for details)")
        return 1
