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

_OPTION_NAMES = {"device": "--device", "dtype": "--dtype", "max_length": "--max-length", "batch_size": "--batch-size"}


def _option_error(exc: ConfigurationError) -> str:
    """Name the option a configuration error is about, where the message lets us tell."""
    message = str(exc)
    if message.startswith("cannot load model"):
        return f"argument --model: {message}"
    for name, option in _OPTION_NAMES.items():
        if message.startswith((f"{name} ", f"{name}=")):
            return f"argument {option}: {message}"
    return message


def _fail(parser: argparse.ArgumentParser, args: argparse.Namespace, message: str) -> NoReturn:
    command_parser = getattr(args, "command_parser", None)
    (command_parser if isinstance(command_parser, argparse.ArgumentParser) else parser).error(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lychee`` command.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success, 2 for bad arguments or inputs (with a message naming
        them), 3 when the model cannot be had here, 1 for other failures (a missing extra, a
        model that fails to run).

    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except UsageError as exc:
        _fail(parser, args, str(exc))
    except MissingDependencyError as exc:
        print(f"lychee {args.command}: {exc}", file=sys.stderr)
        return 1
    except ModelUnavailableError as exc:
        print(f"lychee {args.command}: {exc}", file=sys.stderr)
        return MODEL_UNAVAILABLE
    except ConfigurationError as exc:
        _fail(parser, args, _option_error(exc))
    except LycheeError as exc:
        print(f"lychee {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logger.debug("lychee %s failed", args.command, exc_info=True)
        print(f"lychee {args.command}: error: {type(exc).__name__}: {exc} (run with -vv for details)", file=sys.stderr)
        return 1
