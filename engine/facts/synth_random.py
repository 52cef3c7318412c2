"""Random draws of the synthetic corpora: the per-dataset generator and fast buffered scalar draws."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def dataset_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of dataset `index` of the corpus `seed` (both >= 0)."""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    return np.random.default_rng([seed, index])


class Draw:
    """Fast scalar draws from a numpy Generator (buffered uniforms and normals)."""

    __slots__ = ("g", "_u", "_n")

    def __init__(self, g: np.random.Generator):
        self.g = g
        self._u: list[float] = []
        self._n: list[float] = []

    def u(self) -> float:
        """Uniform in [0, 1)."""
        if not self._u:
            self._u = self.g.random(256).tolist()
        return self._u.pop()

    def normal(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        if not self._n:
            self._n = self.g.standard_normal(64).tolist()
        return mu + sigma * self._n.pop()

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.u()

    def logu(self, a: float, b: float) -> float:
        """Log-uniform in [a, b)."""
        return math.exp(self.uniform(math.log(a), math.log(b)))

    def chance(self, p: float) -> bool:
        return self.u() < p

    def int(self, a: int, b: int) -> int:
        """Uniform integer in [a, b]."""
        return min(b, a + int(self.u() * (b - a + 1)))

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[min(len(seq) - 1, int(self.u() * len(seq)))]

    def weighted(self, items: Sequence[Any], weights: Sequence[float]) -> Any:
        x = self.u() * sum(weights)
        for item, w in zip(items, weights, strict=True):
            x -= w
            if x < 0:
                return item
        return items[-1]

    def sample(self, seq: Sequence[Any], k: int) -> list[Any]:
        """k distinct items, in their original order."""
        idx = sorted(self.g.permutation(len(seq))[:k].tolist())
        return [seq[i] for i in idx]


def sig(x: float, digits: int = 4) -> float:
    """`x` rounded to `digits` significant digits (a short, exact-looking number)."""
    return float(f"{x:.{digits}g}")
