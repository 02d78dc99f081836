"""Exact shortcuts in the checkpoint's forward: work whose result the score never reads is skipped.

* :class:`ReadPositions`: the last decoder layer's MLP runs only at the positions the score reads
  (one per row; none when only the keys and values of a prefix are wanted). Every other position's
  MLP output would feed only the final norm of a hidden state nobody reads.
* :func:`linear_patch_embedding`: the vision tower's patch embedding, a 3-D convolution whose kernel
  equals its stride and its input, is the matrix product it amounts to, without the convolution's
  im2col work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ReadPositions", "linear_patch_embedding"]


class ReadPositions:
    """Hooks on the last decoder layer's MLP so that it runs only at the positions the score reads.

    Outside :meth:`only` the MLP runs as usual. Inside, its input is cut to one position per row
    (or none) before it runs, and its output is put back in place, zeros elsewhere: the rows' hidden
    states at those positions are exact, the others are not, and nothing reads them.
    """

    def __init__(self, language_model: Any) -> None:
        self._positions: Any = None
        mlp = language_model.layers[-1].mlp
        mlp.register_forward_pre_hook(self._cut)
        mlp.register_forward_hook(self._restore)
        self._width = 0

    @contextmanager
    def only(self, positions: Any) -> Iterator[None]:
        """Within the block, the last layer's MLP runs at ``positions[row]`` of each row only.

        Args:
            positions: A long tensor of one position per row, or ``None`` for no position (the
                forward is run for its key/value cache alone).

        """
        self._positions = positions if positions is not None else ()
        try:
            yield
        finally:
            self._positions = None

    def _cut(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        positions = self._positions
        if positions is None:
            return None
        hidden = args[0]
        self._width = hidden.shape[1]
        if isinstance(positions, tuple):
            return (hidden[:, :0], *args[1:])
        import torch

        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return (hidden[rows, positions].unsqueeze(1), *args[1:])

    def _restore(self, module: Any, args: tuple[Any, ...], output: Any) -> Any:
        positions = self._positions
        if positions is None:
            return None
        import torch

        full = output.new_zeros((output.shape[0], self._width, output.shape[2]))
        if not isinstance(positions, tuple):
            rows = torch.arange(output.shape[0], device=output.device)
            full[rows, positions] = output[:, 0]
        return full


def linear_patch_embedding(model: Any) -> bool:
    """Run the vision tower's patch embedding as a matrix product; return whether it was changed.

    Only a convolution without padding or dilation whose kernel equals its stride is changed (as
    in Qwen2.5-VL and Qwen3-VL): each patch it reads is then one dot product per output channel.
    The weights stay where they are (the state dict is unchanged).
    """
    import torch
    from torch.nn import functional

    visual = getattr(getattr(model, "model", None), "visual", None)
    proj = getattr(getattr(visual, "patch_embed", None), "proj", None)
    if not isinstance(proj, torch.nn.Conv3d):
        return False
    if proj.kernel_size != proj.stride or any(proj.padding) or any(d != 1 for d in proj.dilation) or proj.groups != 1:
        return False

    def forward(inputs: Any) -> Any:
        flat = functional.linear(inputs.flatten(1), proj.weight.flatten(1), proj.bias)
        return flat.view(*flat.shape, 1, 1, 1)

    proj.forward = forward  # type: ignore[method-assign,assignment]  # this instance only
    return True
