"""``almarules simulate``: realistic ALMA-like Measurement Sets, written with python-casacore.

A simulation is described by a YAML file (`SimConfig`, see ``examples/sim/``): the array
(a configuration file shipped in ``engine/simulate/array_configs/`` or a path), the date and schedule, the
fields with their intents and sky components, the spectral windows, noise, corruptions,
flags and the seed. `simulate` writes one MS per execution block and, next to each, a
truth file ``<name>.truth.json`` with everything that went into it.

What is computed, and how -- one module per job, data flowing down the list (each
module's docstring gives its part in full):

* `errors` -- `SimConfigError` (a config that cannot be read or is inconsistent) and
  `SimError` (a simulation that cannot be run as asked).
* `config` -- the config models (`SimConfig` and its parts, values with units), reading
  and validating YAML with one-line errors naming the key; the intents and their OBS_MODEs.
* `times` -- UTC date-times and MJD seconds (``TIME`` is MJD seconds, UTC, at the centre
  of each integration).
* `arrays` -- antennas: pad positions from a CASA ``simobserve`` configuration file,
  turned into ITRF exactly as CASA's simulator does.
* `geometry` -- UVW with **casacore measures** (CASA's ``Muvw`` conversion, stored as
  ``UVW = uvw(ANTENNA1) - uvw(ANTENNA2)``), elevations, hour angles, TOPO/LSRK Doppler
  factors.
* `plan` -- what is observed when: spws, fields and mosaic pointings, STATE rows, the
  scans of each execution block, and the integrations of one EB.
* `sky_model` -- the exact direct Fourier sum's inputs (`almarules.kernels.sky`): the
  components each field/pointing and spw sees, with a Gaussian primary beam, spectral
  indices and Gaussian lines (LSRK lines Doppler-shifted to TOPO per integration).
* `tables` -- the MS layout: main-table columns and storage managers, the subtables.
* `writer` -- the main table's rows, written on a background thread.
* `outliers` -- for flagging tests: the outlier visibilities of one EB (whole spectra of
  chosen (row, correlation) pairs scaled) and the low-gain antennas, with their truth records.
* `execution_block` -- one EB: radiometer noise (`almarules.kernels.noise`), corruptions
  (`almarules.kernels.corrupt`: gains drifting in time, bandpasses, low-gain antennas,
  outliers), flags, and the visibilities in chunks of bounded memory.
* `truth` -- the truth file of one EB, with the facts ``almarules facts`` should read back.
* `run` -- `simulate`: output paths (`output_paths`), one EB after another, each MS and
  truth file written under a temporary name and renamed when complete.

Determinism: every random draw comes from ``numpy.random.SeedSequence(seed,
spawn_key=(eb, purpose, ...))`` -- gains (eb, 1), bandpass (eb, 2, spw), noise
(eb, 3, integration, spw), outliers (eb, 4; seed `corruptions.outliers.seed` if given) -- so
the same seed gives the same data whatever the chunking or the number of threads, and
adding outliers or low-gain antennas changes nothing else.

Imports: dsl, kernels, engine.io, engine.facts, engine.ms (measures, for the geometry).
"""

from __future__ import annotations

from .arrays import ARRAY_ALIASES, ARRAY_DIR, ArrayLayout, array_file, load_array
from .config import (OBS_MODES, AtmosphereConfig, ComponentConfig, CorruptionConfig, FieldConfig, FlagConfig, Int,
                     LineConfig, LowGainConfig, NoiseConfig, OutlierConfig, Q, ScheduleConfig, SimConfig, SimIntent,
                     SpwConfig, load_sim_config, parse_sim_config)
from .errors import SimConfigError, SimError
from .execution_block import CHUNK_VISIBILITIES
from .run import output_paths, simulate
from .truth import VERSION

__all__ = ["SimConfig", "SimConfigError", "SimError", "load_sim_config", "parse_sim_config", "simulate",
           "load_array", "ArrayLayout", "output_paths", "ARRAY_DIR", "OBS_MODES"]
