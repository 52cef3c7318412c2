"""Every rule-driven stage has one shape (engine.stages.base): the imaging stage is a RuleStage whose
jobs and records are StageJob and StageRecord, with each parameter traced to a rule line."""

from __future__ import annotations

import json
import re

from almarules.engine.cli.common import load_rules, read_dataset
from almarules.engine.stages.base import RuleStage, StageJob, StageRecord
from almarules.engine.stages.imaging.stage import Stage


def test_the_imaging_stage_has_the_stage_shape(shared_ms, tmp_path):
    ms = shared_ms("alma_sim.ms")
    stage = Stage(load_rules(None), read_dataset([str(ms)], None), [ms], tmp_path / "out")
    assert isinstance(stage, RuleStage)
    key = "J1520-2500.BANDPASS.0.mfs"
    assert key in stage.keys()
    job = stage.job(key)
    assert isinstance(job, StageJob) and job.key == key
    ruled = [s.source for s in job.settings.values() if s.source.startswith("rules/")]
    assert ruled and all(re.fullmatch(r"rules/alma/cycle4/\w+\.rules:\d+:\d+", s) for s in ruled)
    rec = stage.run(key)
    assert isinstance(rec, StageRecord) and rec.key == key and rec.status in ("ok", "uncalibrated")
    assert json.loads(rec.to_json())["key"] == key
    assert (tmp_path / "out").is_dir() and any(p.suffix == ".fits" for p in (tmp_path / "out").iterdir())
