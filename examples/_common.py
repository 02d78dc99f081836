"""Shared command line and demo data for the examples (not part of the package)."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from lychee_integrations.config import default_model
from lychee_integrations.results import score_band


def parse_args(description: str) -> argparse.Namespace:
    """``--model`` (default: $LYCHEE_MODEL or the hub id), ``--build-tiny``, ``--device``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--model",
        default=default_model(),
        help="hub id or local checkpoint directory (default: $LYCHEE_MODEL or %(default)s)",
    )
    parser.add_argument(
        "--build-tiny",
        action="store_true",
        help="if --model is a path that does not exist, build a tiny random checkpoint there first (offline demo)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.build_tiny and not Path(args.model).exists():
        from lychee_integrations.tiny import build_tiny_checkpoint

        print(f"building a tiny random checkpoint at {args.model} (scores are meaningless)")
        build_tiny_checkpoint(args.model)
    return args


def line(rank: int, score: float, label: str) -> str:
    """One result line: ``  1. [0.873 high   ] label``."""
    return f"  {rank}. [{score:.3f} {score_band(score):<7}] {label}"


def demo_images(names_and_colors: dict[str, tuple[int, int, int]]) -> dict[str, Path]:
    """Write small solid-colour PNGs with a stripe to a temporary folder; return their paths."""
    from PIL import Image, ImageDraw

    folder = Path(tempfile.mkdtemp(prefix="lychee-demo-"))
    paths = {}
    for k, (name, color) in enumerate(names_and_colors.items()):
        img = Image.new("RGB", (96 + 16 * k, 72), color)
        ImageDraw.Draw(img).rectangle([8, 8, 30 + 6 * k, 40], fill=(255 - color[0], 255 - color[1], 255 - color[2]))
        paths[name] = folder / f"{name}.png"
        img.save(paths[name])
    return paths
