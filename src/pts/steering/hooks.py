"""Forward hooks on decoder layers that add what a steering gives to the layers' outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pts.steering.layers import decoder_layers


class SteeringHooks:
    """Forward hooks on decoder layers that add the tensors of :meth:`set` to the layer outputs.

    Use as a context manager; the hooks are removed on exit. ``norms[n]`` keeps
    the mean L2 norm of layer ``n``'s unsteered output at the last position of
    every forward (the scale a strength should be compared with).
    """

    def __init__(self, model: Any, layers: Sequence[int]):
        self.blocks = decoder_layers(model)
        self.layers = list(layers)
        self.current: dict[int, tuple] = {}
        self.norms: dict[int, list[float]] = {n: [0.0, 0] for n in self.layers}
        self._handles: list = []

    def __enter__(self) -> SteeringHooks:  # noqa: PYI034 (typing.Self needs 3.11)
        for n in self.layers:
            self._handles.append(self.blocks[n].register_forward_hook(self._hook(n)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def set(self, tensors: dict[int, tuple]) -> None:
        self.current = tensors

    def mean_norm(self, n: int) -> float:
        total, count = self.norms[n]
        return float(total) / count if count else float("nan")

    def _hook(self, n: int) -> Callable:
        def hook(module, args, output):
            every, last = self.current.get(n, (None, None))
            h = output[0] if isinstance(output, tuple) else output
            stats = self.norms[n]
            stats[0] = stats[0] + h[:, -1].float().norm(dim=-1).sum()  # a tensor: no device sync per layer
            stats[1] += h.shape[0]
            if every is None and last is None:
                return None
            if every is not None:
                h = h + every[:, None, :].to(h.dtype)
            else:
                h = h.clone()
            if last is not None:
                h[:, -1, :] += last.to(h.dtype)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook
