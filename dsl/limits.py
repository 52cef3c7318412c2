"""The bounds on what almarules accepts from rule files, summaries and parameters.

Inputs come from people and archives we do not control; every one of these limits turns what
would be a crash, a hang or a memory blow-up into a located, one-line error. They are far above
anything a real rule set or dataset needs (the shipped rules nest expressions at most 6 deep,
the largest ALMA dataset summaries are a few MB).
"""

from __future__ import annotations

MAX_NESTING = 100
"""Deepest expression nesting (operators, calls, parentheses, ``if``) in a rule file."""

MAX_LITERAL_DIGITS = 64
"""Most digits in a number literal (mantissa and exponent together)."""

MAX_RULE_FILE_BYTES = 256 * 1024
"""Largest rule file (bytes) that is read: 30 times the largest shipped file (9 kB). Parsing
takes ~10 us a byte, so a file at the limit parses in ~3 s whatever it holds."""

MAX_IMPORT_SEGMENT_BYTES = 255
"""Longest path segment of an ``import`` (bytes, as POSIX file systems allow)."""

MAX_FFT_SIZE = 2 ** 31
"""Largest image side (pixels) `fft_size` returns; past it the value is an error value."""

MAX_CASCADE_APPLICATIONS = 10_000
"""Most step applications one cascade may make on one dataset (``repeat`` included)."""

MAX_SUMMARY_BYTES = 64 * 1024 * 1024
"""Largest dataset summary file (bytes) that is read."""

MAX_SUMMARY_DEPTH = 64
"""Deepest nesting of mappings and lists in a dataset summary."""

MAX_SUMMARY_NODES = 2_000_000
"""Most YAML/JSON nodes a summary may expand to (aliases counted at every use)."""
