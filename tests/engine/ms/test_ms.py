"""Facts from Measurement Sets: the shared real and simulated MSs against independently
established values, and the catalogue of bad inputs (on MSs the tests make themselves)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from almarules.engine.evaluate.api import evaluate, load_dataset
from almarules.engine.cli.app import main
from almarules.engine.ms.facts import MSError, parse_obs_mode, read_ms

from conftest import SHARED_DATA
from tiny_ms import INTERVAL, N_CHAN, START, make_tiny_ms

MJD0 = datetime(1858, 11, 17, tzinfo=timezone.utc)


def utc(seconds: float) -> str:
    """MJD seconds -> 'YYYY-MM-DD HH:MM:SS' (rounded to the second)."""
    return datetime.fromtimestamp(round(seconds - 3506716800.0), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- the reader on its own MS
@pytest.fixture
def tiny(tmp_path):
    return make_tiny_ms(tmp_path / "tiny.ms")


def test_tiny_ms_facts(tiny):
    d = read_ms([tiny])
    assert d.telescope == "ALMA" and d.array == "12m" and d.project == "2099.1.00001.S"
    assert [a.name for a in d.antennas] == ["DA41", "DA42", "DA43"]
    (spw,) = d.spws
    assert spw.nchan == N_CHAN and spw.channel_width == 15.625e6 and spw.frame == "TOPO"
    assert spw.online_hanning is False and spw.intents == ["PHASE", "TARGET"]
    assert [(f.name, f.intents) for f in d.fields] == [("J1733-1304", ["PHASE"]), ("TARGET_1", ["TARGET"])]
    assert [(s.number, s.intents) for s in d.scans] == [(1, ["PHASE"]), (2, ["TARGET"]), (3, ["TARGET"]), (4, ["TARGET"])]
    eb = d.ebs[0]
    assert eb.start == pytest.approx(START) and eb.end == pytest.approx(START + 4 * INTERVAL)
    assert eb.syscal_rows == 0 and eb.processing_history is False and eb.n_antennas == 3
    # natural weighting: 3 baselines x 3 integrations x 8 channels x 2 hands, weight 4 each
    target = next(w for w in d.weights if w.field == "TARGET_1")
    assert target.sum_weight == pytest.approx(3 * 3 * N_CHAN * 2 * 4.0)
    assert target.sensitivity == pytest.approx(1 / math.sqrt(3 * 3 * N_CHAN * 2 * 4.0))
    assert target.time_on_source == pytest.approx(3 * INTERVAL) and target.flagged_fraction == 0.0


def test_flags_are_excluded_from_the_weights(tmp_path):
    ms = make_tiny_ms(tmp_path / "f.ms", flag_fraction=0.25)
    target = next(w for w in read_ms([ms]).weights if w.field == "TARGET_1")
    assert target.flagged_fraction == pytest.approx(0.25)
    assert target.sum_weight == pytest.approx(3 * 3 * 6 * 2 * 4.0)


def test_several_execution_blocks_merge(tmp_path):
    a = make_tiny_ms(tmp_path / "a.ms")
    b = make_tiny_ms(tmp_path / "b.ms")
    d = read_ms([a, b])
    assert [e.id for e in d.ebs] == ["a.ms", "b.ms"]
    assert len(d.spws) == 1 and d.spws[0].rows == 2 * 12
    assert len(d.scans) == 8 and len(d.weights) == 4


def test_obs_mode_spellings():
    assert parse_obs_mode("CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE") == {"BANDPASS", "AMPLITUDE"}
    assert parse_obs_mode("CALIBRATE_AMPLI#UNSPECIFIED,CALIBRATE_PHASE#UNSPECIFIED") == {"AMPLITUDE", "PHASE", }
    assert parse_obs_mode("OBSERVE_TARGET#UNSPECIFIED") == {"TARGET"}
    assert parse_obs_mode("CALIBRATE_ATMOSPHERE#OFF_SOURCE,CALIBRATE_WVR#OFF_SOURCE") == {"ATMOSPHERE", "WVR"}
    assert parse_obs_mode("SYSTEM_CONFIGURATION#UNSPECIFIED") == set()


# ---------------------------------------------------------------- bad inputs
def _drop_subtable(ms: Path, name: str) -> None:
    shutil.rmtree(ms / name)


def _remove_column(ms: Path, sub: str, col: str) -> None:
    from casacore.tables import table

    t = table(str(ms / sub) if sub else str(ms), readonly=False, ack=False)
    t.removecols([col])
    t.close()


def _put(ms: Path, col: str, value) -> None:
    from casacore.tables import table

    t = table(str(ms), readonly=False, ack=False)
    t.putcell(col, 0, value)
    t.close()


def _empty(ms: Path) -> None:
    from casacore.tables import table

    t = table(str(ms), readonly=False, ack=False)
    t.removerows(list(range(t.nrows())))
    t.close()


BAD = [
    ("missing", lambda p: None, "{p}: no such file or directory"),
    ("a file", lambda p: p.write_text("x"), "{p}: not a Measurement Set (not a directory)"),
    ("not a table", lambda p: p.mkdir(), "{p}: not a Measurement Set (no table.dat: not a casacore table)"),
    ("a subtable", "ANTENNA", "{p}/ANTENNA: not a Measurement Set (a casacore table without DATA_DESC_ID or SPECTRAL_WINDOW; columns: OFFSET, POSITION, TYPE, DISH_DIAMETER, FLAG_ROW, MOUNT...)"),
    ("no SPECTRAL_WINDOW", lambda p: _drop_subtable(p, "SPECTRAL_WINDOW"), "{p}: missing subtable SPECTRAL_WINDOW"),
    ("no FIELD", lambda p: _drop_subtable(p, "FIELD"), "{p}: missing subtable FIELD"),
    ("no CHAN_FREQ", lambda p: _remove_column(p, "SPECTRAL_WINDOW", "CHAN_FREQ"), "{p}/SPECTRAL_WINDOW: missing column CHAN_FREQ"),
    ("no DISH_DIAMETER", lambda p: _remove_column(p, "ANTENNA", "DISH_DIAMETER"), "{p}/ANTENNA: missing column DISH_DIAMETER"),
    ("no WEIGHT", lambda p: _remove_column(p, "", "WEIGHT"), "{p}: missing column WEIGHT"),
    ("empty main table", _empty, "{p}: the main table has no rows"),
    ("bad DATA_DESC_ID", lambda p: _put(p, "DATA_DESC_ID", 3),
     "{p}: main table column DATA_DESC_ID holds 3, but DATA_DESCRIPTION has 1 row"),
    ("bad FIELD_ID", lambda p: _put(p, "FIELD_ID", 7), "{p}: main table column FIELD_ID holds 7, but FIELD has 2 rows"),
    ("bad ANTENNA1", lambda p: _put(p, "ANTENNA1", 9), "{p}: main table column ANTENNA1/ANTENNA2 holds 9, but ANTENNA has 3 rows"),
    ("bad STATE_ID", lambda p: _put(p, "STATE_ID", 5), "{p}: main table column STATE_ID holds 5, but STATE has 2 rows"),
]


@pytest.mark.parametrize("label, damage, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_line(tmp_path, capsys, label, damage, message):
    path = tmp_path / "x.ms"
    if label in ("missing", "a file", "not a table"):
        damage(path)
        target = path
    elif label == "a subtable":
        make_tiny_ms(path)
        target = path / "ANTENNA"
        message = message.replace("{p}/ANTENNA", "{p}")
        path = target
    else:
        make_tiny_ms(path)
        damage(path)
        target = path
    expected = message.format(p=path)
    with pytest.raises(MSError) as err:
        read_ms([target])
    assert str(err.value) == expected
    # the command line: exit 2, the same one line, no traceback, nothing written
    out = tmp_path / "facts.json"
    assert main(["facts", str(target), "-o", str(out)]) == 2 or label == "missing"
    err_text = capsys.readouterr().err
    assert "Traceback" not in err_text and len(err_text.strip().splitlines()) == 1
    assert not out.exists()


def test_table_locked_by_another_process(tmp_path):
    # made in another process: casacore's per-process table cache would otherwise hold it here
    ms = tmp_path / "locked.ms"
    subprocess.run([sys.executable, "-c", f"from tiny_ms import make_tiny_ms; from pathlib import Path; "
                    f"make_tiny_ms(Path({str(ms)!r}))"], check=True, cwd=Path(__file__).resolve().parents[2])
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from casacore.tables import table
            t = table({str(ms)!r}, readonly=False, ack=False, lockoptions='permanent')
            print('locked', flush=True)
            time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(MSError) as err:
            read_ms([ms])
        assert time.monotonic() - started < 10, "a locked table must not hang the reader"
        assert str(err.value) == f"{ms}: the main table is locked by another process; try again when it is done"
    finally:
        holder.kill()
        holder.wait()


def test_unknown_declared_intent(tiny):
    with pytest.raises(MSError) as err:
        read_ms([tiny], intents={"TARGET_1": ["TARGT"]})
    assert "unknown intent 'TARGT'" in str(err.value)


# ---------------------------------------------------------------- the shared datasets
# Independent values: the data README (established with CASA listobs by its authors) and, for
# alma_sim, the simulator's truth file.

def test_alma_sim_against_its_truth(shared_ms):
    ms = shared_ms("alma_sim.ms")
    truth = json.loads((SHARED_DATA / "alma_sim.truth.json").read_text())
    d = read_ms([ms])
    assert d.telescope == "ALMA" and d.array == "12m"
    assert len(d.antennas) == truth["observation"]["n_antennas"] == 40
    assert [a.name for a in d.antennas] == truth["observation"]["antenna_names"]
    assert [a.station for a in d.antennas] == truth["observation"]["pads"]
    for spw, t in zip(d.spws, truth["spectral_windows"], strict=True):
        assert (spw.id, spw.name, spw.nchan) == (t["id"], t["name"], t["nchan"])
        assert spw.start_frequency == pytest.approx(t["first_chan_centre_hz"])
        assert spw.channel_width == pytest.approx(t["chan_width_hz"])
        assert spw.min_frequency == pytest.approx(t["band_low_edge_hz"])
        assert spw.max_frequency == pytest.approx(t["band_high_edge_hz"])
        assert spw.frame == "TOPO" and spw.online_hanning is False
    assert [s.correlator_mode for s in d.spws] == ["TDM", "FDM"]
    # SOURCE.REST_FREQUENCY is 230.538 GHz (README); its rows name spw 0, and the reader reports that
    assert d.spws[0].rest_frequencies == [230.538e9]
    intents = {"BANDPASS": ["AMPLITUDE", "BANDPASS"], "PHASE": ["PHASE"], "CHECK": ["CHECK"], "TARGET": ["TARGET"]}
    for f, t in zip(d.fields, truth["fields"], strict=True):
        assert f.name == t["name"] and f.intents == intents[t["role"]]
        assert f.ra == pytest.approx(t["ra_deg"], abs=1e-9) and f.dec == pytest.approx(t["dec_deg"], abs=1e-9)
        w = [x for x in d.weights if x.field == f.name]
        assert all(x.time_on_source == pytest.approx(t["time_on_source_s"]) for x in w)
    assert [s.number for s in d.scans] == list(range(1, 11))
    assert utc(d.ebs[0].start) == "2024-06-15 02:40:37"
    assert d.ebs[0].integration_time == pytest.approx(36.288)
    # sigma_nat of the target, spw 0: sigma per visibility / sqrt(rows x channels x 2 hands)
    noise = truth["corruptions"]["thermal_noise"]["per_spw"]
    for spw, nchan in ((0, 64), (1, 120)):
        w = next(x for x in d.weights if x.field == "SIMGAL_1" and x.spw == spw)
        n_vis = 780 * 15 * nchan * 2
        assert w.sensitivity == pytest.approx(noise[str(spw)]["sigma_jy_per_visibility_component"] / math.sqrt(n_vis),
                                              rel=1e-6)
    # baselines 15-460 m (C40-3)
    assert 14 < d.ebs[0].baselines.min < 16 and 455 < d.ebs[0].baselines.max < 461


def test_ngc5921_real_vla(shared_ms):
    d = read_ms([shared_ms("ngc5921.ms")])
    assert d.telescope == "VLA" and d.array == "VLA"
    (spw,) = d.spws
    assert spw.nchan == 63 and spw.channel_width == pytest.approx(24414.0625) and spw.frame == "LSRK"
    assert spw.rest_frequencies == [1420.405752e6]  # HI, SOURCE.REST_FREQUENCY (README)
    assert spw.start_frequency / 1e6 == pytest.approx(1412.665, abs=1e-3)
    assert spw.channel_frequencies[-1] / 1e6 == pytest.approx(1414.179, abs=1e-3)
    assert [f.name for f in d.fields] == ["1331+30500002_0", "1445+09900002_0", "N5921_2"]
    assert all(f.intents is None for f in d.fields), "no intents in the MS: unknown, not empty"
    assert d.ebs[0].n_antennas == 27 and len(d.antennas) == 27
    assert [s.number for s in d.scans] == [1, 2, 3, 4, 5, 6, 7]
    assert spw.rows == 22653 and spw.baselines == 27 * 26 // 2
    # TIME is TAI: the README's 09:18:45 - 10:47:15 are the TAI integration edges; facts are UTC,
    # 29 s earlier (TAI - UTC = 29 s in 1995)
    assert utc(d.ebs[0].start) == "1995-04-13 09:18:16" and utc(d.ebs[0].end) == "1995-04-13 10:46:46"
    # the README's 40 m - 1.03 km are physical baselines (from ITRF positions); projected ones are shorter
    physical = _physical_baselines(d)
    assert 39 < min(physical) < 41 and 1020 < max(physical) < 1040
    assert d.ebs[0].baselines.min <= min(physical) and d.ebs[0].baselines.max <= max(physical)
    assert d.ebs[0].processing_history is False and d.ebs[0].history_origins


def _physical_baselines(d) -> list[float]:
    pos = [a.position for a in d.antennas]
    return [math.dist(p, q) for i, p in enumerate(pos) for q in pos[i + 1:]]


def test_ngc5921_with_declared_intents(shared_ms, tmp_path):
    declared = tmp_path / "intents.yaml"
    declared.write_text("1331+30500002_0: [AMPLITUDE, BANDPASS]\n1445+09900002_0: [PHASE]\nN5921_2: [TARGET]\n")
    from almarules.engine.evaluate.api import default_rules, load_program

    d = load_dataset([shared_ms("ngc5921.ms")], intents=declared)
    assert [f.intents for f in d.fields] == [["AMPLITUDE", "BANDPASS"], ["PHASE"], ["TARGET"]]
    assert d.scans[2].intents == ["TARGET"]
    result = evaluate(load_program(default_rules()), d)
    assert "N5921_2.TARGET.0.cube" in result.entities["image"]
    # no Tsys in a 1995 VLA dataset: the cycle4 score says so
    assert "no Tsys calibration" in [r.reason for r in result.value("dataset.importdata_score").reasons]


def test_day2_tdem0003_real_evla(shared_ms):
    d = read_ms([shared_ms("day2_TDEM0003_10s_norx_1src_1spw.ms")])
    assert d.telescope == "EVLA" and d.array == "VLA"
    (spw,) = d.spws
    assert (spw.nchan, spw.channel_width, spw.frame) == (64, 125000.0, "TOPO")
    assert spw.start_frequency / 1e9 == pytest.approx(36.3045, abs=1e-4)
    assert [f.name for f in d.fields] == ["J1008+0730"]
    assert d.ebs[0].n_antennas == 18 and spw.baselines == 153 and spw.rows == 1360
    assert len(d.scans) == 1
    assert utc(d.ebs[0].start)[:16] == "2010-04-26 03:21"


def test_x5707_real_alma(shared_ms):
    d = read_ms([shared_ms("X5707_1spw_1scan_10chan_1time_1bl_noatm.ms")])
    assert d.telescope == "ALMA" and d.array == "12m" and d.project == "uid://A001/X1221/X673"
    assert d.ebs[0].id == "uid://A002/Xca5b1c/X5707"
    (spw,) = d.spws
    assert spw.nchan == 11 and spw.channel_width == pytest.approx(488281.25)
    assert spw.start_frequency / 1e9 == pytest.approx(111.4573, abs=1e-4)
    assert spw.online_hanning is None, "EFFECTIVE_BW = 2 x width is neither Hanning (2.667) nor none (1)"
    assert [a.name for a in d.antennas] == ["DA41", "DA42"]
    assert [(f.name, f.intents) for f in d.fields] == [("GAMA567624", ["TARGET"])]
    assert [s.number for s in d.scans] == [6]
    assert d.ebs[0].processing_history is True
    assert {"importasdm", "flagdata", "applycal", "mstransform", "split"} <= set(d.ebs[0].history_origins)
    assert 68 < d.ebs[0].baselines.max < 70
    assert utc(d.ebs[0].start) == "2018-03-16 05:38:50"


def test_eval_runs_cycle4_on_each_shared_ms(shared_ms, capsys):
    for name in ["alma_sim.ms", "ngc5921.ms", "day2_TDEM0003_10s_norx_1src_1spw.ms",
                 "X5707_1spw_1scan_10chan_1time_1bl_noatm.ms"]:
        assert main(["eval", str(shared_ms(name)), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert not [v for v in data["values"] if v["status"] == "error"]


# ---------------------------------------------------------------- cross-correlations only (issue 10)
def test_ngc5921_weights_are_cross_correlations_only(shared_ms):
    """ngc5921 holds 1619 autocorrelation rows with weights; imaging never uses them, so the facts'
    natural-weighting sums must not include them (they made the target's sigma_nat 3.6 % too low)."""
    from casacore.tables import table, taql

    ms = shared_ms("ngc5921.ms")
    names = list(table(str(ms / "FIELD"), ack=False).getcol("NAME"))
    t = table(str(ms), ack=False)
    expected = {}
    try:  # independent sums: unflagged WEIGHT_SPECTRUM (filled; both hands RR, LL) of cross rows
        assert taql("select from $t where ANTENNA1 == ANTENNA2").nrows() == 1619
        total = "select gsum(sum(iif(FLAG || FLAG_ROW, 0., WEIGHT_SPECTRUM))) as w from $t where "
        for fid, name in enumerate(names):
            cross = f"ANTENNA1 != ANTENNA2 and FIELD_ID == {fid}"
            expected[name] = (taql(total + cross).getcol("w")[0], taql(total + f"FIELD_ID == {fid}").getcol("w")[0],
                              taql(f"select from $t where {cross}").nrows())
    finally:
        t.close()
    d = read_ms([ms])
    assert sorted(w.field for w in d.weights) == sorted(names)
    for w in d.weights:
        cross, every, rows = expected[w.field]
        assert w.sum_weight == pytest.approx(cross, rel=1e-12) and w.rows == rows
        assert every > cross * 1.07, "the autocorrelations' weights would have made a difference"
    target = next(w for w in d.weights if w.field == "N5921_2")
    assert target.sum_weight == 18044208.0  # with the 918 autocorrelation rows: 19432224
    assert target.sensitivity == pytest.approx(235.413e-6, rel=1e-5)  # was 226.850e-6 Jy
    # CASA 6.7 (casatools imager: selectvis(field="2", spw="0"), defineimage(stokes="I"),
    # weight("natural"), apparentsens(), measured 2026-12-06) gives 2.9659294544e-05: 1/sqrt of the
    # sum over cross-correlation rows of WEIGHT x 63 channels (CASA takes WEIGHT per channel; this
    # MS's WEIGHT_SPECTRUM is WEIGHT / 63). With the autocorrelations it would be 2.858e-05.
    assert target.sum_weight * 63 == pytest.approx(1 / 2.9659294544e-05 ** 2, rel=1e-7)


# ---------------------------------------------------------------- damaged tables: one clear line (issue 10)
def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "almarules", *argv], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def truncated_alma_sim(shared_ms, tmp_path_factory) -> Path:
    """A copy of alma_sim.ms whose main-table data file table.f0 (TIME, DATA_DESC_ID, ... : the
    IncrementalStMan columns) is cut to half its length."""
    ms = tmp_path_factory.mktemp("truncated") / "alma_sim.ms"
    shutil.copytree(shared_ms("alma_sim.ms"), ms)
    f0 = ms / "table.f0"
    with open(f0, "r+b") as f:
        f.truncate(f0.stat().st_size // 2)
    return ms


@pytest.mark.parametrize("command", ["facts", "eval", "image"])
def test_truncated_main_table_is_one_clear_line(truncated_alma_sim, tmp_path, command):
    argv = [command, str(truncated_alma_sim)] + (["--all", "-o", str(tmp_path / "img")] if command == "image" else [])
    proc = _cli(*argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert lines[0] == (f"almarules: {truncated_alma_sim}: cannot read column TIME of the main table: "
                        f"FilebufIO::readBlock - incorrect number of bytes read for file "
                        f"(a data file of the table is truncated or damaged)")


def test_truncated_file_in_python_is_an_ms_error(truncated_alma_sim):
    with pytest.raises(MSError, match=r"cannot read column TIME of the main table"):
        read_ms([truncated_alma_sim])


def test_ms_without_data_column(tmp_path):
    """Facts need no visibilities; an image does, and says which MS lacks which column."""
    from casacore.tables import table

    from almarules.engine.simulate import simulate

    ms = Path(simulate(Path(__file__).resolve().parents[3] / "examples" / "sim" / "alma_12m_band6_small.yaml",
                       tmp_path / "nodata.ms")["ms"][0])
    t = table(str(ms), readonly=False, ack=False)
    t.removecols(["DATA"])
    t.close()
    facts = _cli("facts", str(ms), "--json")
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout)["fields"]
    proc = _cli("image", str(ms), "--field", "SIMGAL_1", "--spw", "0", "--specmode", "mfs", "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0] == (f"almarules: {ms} (main table): no DATA column (and no CORRECTED_DATA): "
                        f"no visibilities to image")  # before any image is attempted
