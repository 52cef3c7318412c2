"""Flag versions: CASA's on-disk layout, save / change / restore round trips, list, delete, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_ms import make_tiny_ms

from almarules.engine.stages.calibration import flagversions as fv


@pytest.fixture
def ms(tmp_path) -> Path:
    return make_tiny_ms(tmp_path / "work.ms", flag_fraction=0.25)


def _flags(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from casacore.tables import table

    with table(str(path), ack=False) as t:
        return t.getcol("FLAG"), t.getcol("FLAG_ROW")


def _set_flags(path: Path, flag: np.ndarray, flag_row: np.ndarray) -> None:
    from casacore.tables import table

    with table(str(path), readonly=False, ack=False) as t:
        t.putcol("FLAG", flag)
        t.putcol("FLAG_ROW", flag_row)


def test_layout_is_casas(ms):
    """As CASA 6.7's flagmanager(mode='save', versionname='x', comment='my comment') wrote it
    (inspected with casatools.table): FLAG_VERSION_LIST 'x : my comment\\n'; table flags.x with
    FLAG (Bool, ndim 2, TiledShapeStMan group 'TiledFlag') and FLAG_ROW (Bool scalar,
    StandardStMan), no keywords, as many rows as the MS."""
    from casacore.tables import table

    path = fv.save(ms, "x", "my comment")
    assert path == Path(str(ms) + ".flagversions") / "flags.x"
    assert (path.parent / "FLAG_VERSION_LIST").read_text() == "x : my comment\n"
    with table(str(path), ack=False) as t:
        assert sorted(t.colnames()) == ["FLAG", "FLAG_ROW"]
        assert t.nrows() == 12 and t.getkeywords() == {}
        flag = t.getcoldesc("FLAG")
        assert (flag["valueType"], flag["ndim"], flag["dataManagerType"], flag["dataManagerGroup"]) == (
            "boolean", 2, "TiledShapeStMan", "TiledFlag")
        row = t.getcoldesc("FLAG_ROW")
        assert (row["valueType"], row["dataManagerType"]) == ("boolean", "StandardStMan")
        np.testing.assert_array_equal(t.getcol("FLAG"), _flags(ms)[0])
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_save_change_restore(ms):
    flag0, row0 = _flags(ms)
    row0[5] = True
    _set_flags(ms, flag0, row0)
    fv.save(ms, "before", "the original")
    rng = np.random.default_rng(1)
    _set_flags(ms, rng.random(flag0.shape) < 0.5, rng.random(row0.shape) < 0.5)
    fv.save(ms, "random", "")
    changed = _flags(ms)
    assert not np.array_equal(changed[0], flag0)
    fv.restore(ms, "before")
    np.testing.assert_array_equal(_flags(ms)[0], flag0)
    np.testing.assert_array_equal(_flags(ms)[1], row0)
    fv.restore(ms, "random")
    np.testing.assert_array_equal(_flags(ms)[0], changed[0])
    np.testing.assert_array_equal(_flags(ms)[1], changed[1])


def test_versions_resave_and_delete(ms):
    assert fv.versions(ms) == []
    fv.save(ms, "a", "first : with a colon")
    fv.save(ms, "b", "second")
    fv.save(ms, "a", "first again")  # replaced in place
    assert fv.versions(ms) == [("a", "first again"), ("b", "second")]
    fv.delete(ms, "a")
    assert fv.versions(ms) == [("b", "second")]
    assert not (fv.versions_dir(ms) / "flags.a").exists()


def test_reads_casa_list_lines(ms):
    fv.save(ms, "flagdata_1", "")
    (fv.versions_dir(ms) / fv.LIST_FILE).write_text("flagdata_1 : Flags autosave on 2024-06-15 02:45:00\n\n")
    assert fv.versions(ms) == [("flagdata_1", "Flags autosave on 2024-06-15 02:45:00")]


@pytest.mark.parametrize("name", ["", "a b", "x/y", "v:1"])
def test_bad_names(ms, name):
    with pytest.raises(fv.FlagVersionError, match="bad flag version name"):
        fv.save(ms, name)


def test_unknown_version(ms):
    fv.save(ms, "a")
    with pytest.raises(fv.FlagVersionError, match=r"no flag version 'b' of .*work.ms \(saved: a\)"):
        fv.restore(ms, "b")
    with pytest.raises(fv.FlagVersionError, match="no flag version 'b'"):
        fv.delete(ms, "b")


def test_restore_refuses_another_ms(ms, tmp_path):
    fv.save(ms, "a")
    other = make_tiny_ms(tmp_path / "other.ms")
    from casacore.tables import table

    with table(str(other), readonly=False, ack=False) as t:
        t.removerows([0])
    shutil.copytree(fv.versions_dir(ms), fv.versions_dir(other))
    with pytest.raises(fv.FlagVersionError, match="has 12 rows"):
        fv.restore(other, "a")


def test_variable_shape_flags(tmp_path, shared_ms):
    """A real-size MS whose FLAG cells differ in shape between rows (alma_sim: 2 spws of different
    widths): saved and restored run by run of equal shape."""
    src = shared_ms("alma_sim.ms")
    dst = tmp_path / "sim.ms"
    shutil.copytree(src, dst)
    from casacore.tables import table

    with table(str(dst), readonly=False, ack=False) as t:
        shapes = set(t.getcolshapestring("FLAG", 0, t.nrows()))
        assert len(shapes) > 1
        before = [t.getcell("FLAG", r).copy() for r in range(0, t.nrows(), 997)]
        fv.save(dst, "orig")
        for r in range(0, t.nrows(), 997):
            t.putcell("FLAG", r, ~t.getcell("FLAG", r))
    fv.restore(dst, "orig")
    with table(str(dst), ack=False) as t:
        after = [t.getcell("FLAG", r) for r in range(0, t.nrows(), 997)]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
