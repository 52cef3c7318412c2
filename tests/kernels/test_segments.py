"""segment_reduce against a plain loop over the owners."""

from __future__ import annotations

import numpy as np
import pytest

from almarules.kernels.segments import segment_reduce


def test_segment_reduce_equals_a_loop_over_owners():
    rng = np.random.default_rng(4)
    owner = np.sort(rng.integers(0, 30, 200))
    x = rng.normal(size=200)
    for ufunc, empty in ((np.maximum, -np.inf), (np.minimum, np.inf), (np.add, 0.0)):
        out, has = segment_reduce(owner, x, 40, ufunc, empty)
        for k in range(40):
            mine = x[owner == k]
            assert has[k] == bool(len(mine))
            assert out[k] == pytest.approx(ufunc.reduce(mine) if len(mine) else empty, rel=1e-12)  # (sums: order)
    out, has = segment_reduce(np.zeros(0, dtype=np.int64), np.zeros(0), 3, np.maximum)
    assert out.tolist() == [0.0, 0.0, 0.0] and not has.any()
