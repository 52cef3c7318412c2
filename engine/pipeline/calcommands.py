"""The CASA calls equivalent to each calibration stage (commands.log, the weblog's commands), with
the parameters the rules chose; what CASA would do differently is said in the note."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from almarules.engine.pipeline.state import Command
from almarules.engine.stages.calibration.session import CalSession
from almarules.engine.stages.calibration.solve_stages import solve_channels


def _spws(s: CalSession, info) -> str:
    """CASA's spw selection of the channels the solves use: '0:6~56,1:...'."""
    return ",".join(f"{spw}:{c.start}~{c.stop - 1}" for spw, st in sorted(info.setups.items())
                    for c in [solve_channels(s, st)])


def commands(name: str, s: CalSession, tables: list[str], fluxfile: Optional[str]) -> list[Command]:
    """CASA task calls equivalent to stage `name` on every working copy."""
    out: list[Command] = []
    ref = s.refants[0] if s.refants else ""
    for info in s.ms:
        vis = repr(str(info.path))
        tab = {Path(t).name: t for t in tables if Path(t).name.startswith(info.source.name + ".")}
        casa = _casa(name, s, info, vis, ref, tab, fluxfile)
        out.extend(Command(tool="casa", text=text, note=note) for text, note in casa)
    return out


def _casa(name: str, s: CalSession, info, vis: str, ref: str, tab: dict[str, str],
          fluxfile: Optional[str]) -> list[tuple[str, Optional[str]]]:
    calibrators = ",".join(c for c in s.calibrators if c in info.fields)
    if name == "flagdata":
        edges = ",".join(f"{spw}:0~{n - 1};{st.freq.size - n}~{st.freq.size - 1}" for spw, st in sorted(info.setups.items())
                         if (n := int(s.value(f"spw[{spw}].edge_channels", 0) or 0)) > 0)
        calls = [(f"flagdata(vis={vis}, mode='manual', autocorr=True)", None),
                 (f"flagdata(vis={vis}, mode='shadow', tolerance={float(s.value('dataset.shadow_tolerance', 0.0)):g})",
                  "CASA also computes the uvw of antennas absent from the data")]
        if edges:
            calls.append((f"flagdata(vis={vis}, mode='manual', spw='{edges}')", None))
        return calls
    if name == "setjy":
        return [(f"setjy(vis={vis}, field='{f}', spw='{spw}', standard='manual', fluxdensity=[{m[0]:.6g}, 0, 0, 0], "
                 f"spix={m[1]:.4g}, reffreq='{m[2] / 1e9:.6f}GHz')", f"from {m[3]}")
                for (f, spw), m in sorted(s.models.items()) if m[3] != "gfluxscale" and f in info.fields]
    if name == "bandpass":
        b = sorted(t for n, t in tab.items() if n.endswith(".bandpass.tbl"))
        field = ",".join(c for c in s.fields_with("BANDPASS") if c in info.fields)
        return [(f"gaincal(vis={vis}, caltable='phaseup.tbl', field='{field}', spw='{_spws(s, info)}', solint='int', "
                 f"calmode='p', refant='{ref}')", None),
                (f"bandpass(vis={vis}, caltable='{b[0] if b else 'bandpass.tbl'}', field='{field}', solint='inf', "
                 f"combine='scan', refant='{ref}', solnorm=True, gaintable=['phaseup.tbl'])",
                 "almarules writes one B table per spw; solint in channels from the rules' bandpass_chanavg")]
    if name in ("gfluxscale", "timegaincal"):
        amp = tab.get(f"{info.source.name}.amp_scan.tbl", "amp_scan.tbl")
        transfer = ",".join(dict.fromkeys(f for (f, _), m in s.models.items() if m[3] == "gfluxscale"))
        if name == "gfluxscale":  # the flux calibrator and every field whose flux it transfers to
            calibrators = ",".join(dict.fromkeys(s.fields_with("AMPLITUDE") + transfer.split(","))) if transfer \
                else calibrators
        calls = [(f"gaincal(vis={vis}, caltable='{tab.get(f'{info.source.name}.phase_int.tbl', 'phase_int.tbl')}', "
                  f"field='{calibrators}', spw='{_spws(s, info)}', solint='int', calmode='p', refant='{ref}', "
                  f"gaintable=[{', '.join(repr(t) for n, t in sorted(tab.items()) if n.endswith('bandpass.tbl'))}])",
                  None),
                 (f"gaincal(vis={vis}, caltable='{amp}', field='{calibrators}', solint='inf', calmode='ap', "
                  f"refant='{ref}')", None)]
        if name == "gfluxscale":
            calls.append((f"fluxscale(vis={vis}, caltable='{amp}', fluxtable='flux.tbl', "
                          f"reference='{','.join(s.fields_with('AMPLITUDE'))}', transfer='{transfer}')",
                          "CASA takes the median of the antennas' amplitude ratios, almarules their clipped mean"))
        return calls
    if name == "applycal":
        gt = [t for n, t in sorted(tab.items()) if n.endswith(("bandpass.tbl", "phase_int.tbl", "amp_scan.tbl"))]
        return [(f"applycal(vis={vis}, field='{calibrators}', gaintable={gt!r}, interp=['nearest', 'linear', "
                 f"'linear'], calwt=True)", "targets and check sources take the phase calibrator's phase_scan table")]
    return []
