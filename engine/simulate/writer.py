"""The main-table writer: computed chunks go into the MS's rows on a background thread."""

from __future__ import annotations

import time as _time
from typing import Optional

import numpy as np

from .plan import Plan, Timeline


class Writer:
    """Writes computed chunks to the main table on a background thread (bounded queue).

    python-casacore lets numpy work go on while it copies into the table, so writing one
    chunk overlaps computing the next. Errors are re-raised in the caller by `put`/`close`.
    """

    def __init__(self, ms, plan: "Plan", tl: "Timeline", sigma, weight, flag_blocks, frow, uniform, timer):
        import queue
        import threading

        self.ms, self.plan, self.tl = ms, plan, tl
        self.sigma, self.weight = sigma.astype(np.float32), weight.astype(np.float32)
        self.flag_blocks, self.frow, self.uniform, self.timer = flag_blocks, frow, uniform, timer
        nspw = len(plan.spws)
        self.a1_all = np.tile(plan.a1, nspw)
        self.a2_all = np.tile(plan.a2, nspw)
        self.ddid_block = np.repeat(np.arange(nspw, dtype=np.int32), plan.nbl)
        self.error: Optional[BaseException] = None
        self.queue: "queue.Queue" = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._run, name="almarules-ms-writer", daemon=True)
        self.thread.start()

    def put(self, c0: int, c1: int, uvw: np.ndarray, data) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((c0, c1, uvw, data))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            try:
                t0 = _time.perf_counter()
                self._write(*item)
                self.timer.add("table writing (background thread)", t0)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self.error = exc

    def _write(self, c0: int, c1: int, uvw: np.ndarray, data) -> None:
        ms, plan, tl = self.ms, self.plan, self.tl
        nspw, nbl, npol = len(plan.spws), plan.nbl, 2
        nt = c1 - c0
        r0 = c0 * nspw * nbl
        nr = nt * nspw * nbl
        interval = plan.cfg.schedule.integration
        times = np.repeat(tl.times[c0:c1], nspw * nbl)
        ms.putcol("TIME", times, r0, nr)
        ms.putcol("TIME_CENTROID", times, r0, nr)
        ms.putcol("INTERVAL", np.full(nr, interval), r0, nr)
        ms.putcol("EXPOSURE", np.full(nr, interval), r0, nr)
        ms.putcol("ANTENNA1", np.tile(self.a1_all, nt), r0, nr)
        ms.putcol("ANTENNA2", np.tile(self.a2_all, nt), r0, nr)
        zeros = np.zeros(nr, np.int32)
        for col in ("FEED1", "FEED2", "OBSERVATION_ID", "ARRAY_ID", "PROCESSOR_ID"):
            ms.putcol(col, zeros, r0, nr)
        ms.putcol("DATA_DESC_ID", np.tile(self.ddid_block, nt), r0, nr)
        ms.putcol("FIELD_ID", np.repeat(tl.field[c0:c1], nspw * nbl), r0, nr)
        ms.putcol("SCAN_NUMBER", np.repeat(tl.scan[c0:c1], nspw * nbl), r0, nr)
        ms.putcol("STATE_ID", np.repeat(tl.state[c0:c1], nspw * nbl), r0, nr)
        ms.putcol("UVW", np.repeat(uvw[:, None], nspw, axis=1).reshape(-1, 3), r0, nr)
        sig = np.repeat(self.sigma[c0:c1], nbl, axis=1).reshape(-1)
        ms.putcol("SIGMA", np.repeat(sig[:, None], npol, axis=1), r0, nr)
        w = np.repeat(self.weight[c0:c1], nbl, axis=1).reshape(-1)
        ms.putcol("WEIGHT", np.repeat(w[:, None], npol, axis=1), r0, nr)
        ms.putcol("FLAG_ROW", np.tile(self.frow, nt), r0, nr)
        if self.uniform:
            nchan = data.shape[3]
            ms.putcol("DATA", data.reshape(nr, nchan, npol), r0, nr)
            fl = np.broadcast_to(np.stack(self.flag_blocks)[None], (nt, nspw, nbl, nchan, npol))
            ms.putcol("FLAG", np.ascontiguousarray(fl).reshape(nr, nchan, npol), r0, nr)
        else:
            for j in range(nt):
                for s in plan.spws:
                    start = r0 + (j * nspw + s.id) * nbl
                    ms.putcol("DATA", data[s.id][j], start, nbl)
                    ms.putcol("FLAG", self.flag_blocks[s.id], start, nbl)
