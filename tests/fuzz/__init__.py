"""Hostile-input fuzzing (issue 11): mutators of rules, summaries and ``--set`` values, and a
runner that executes each input through the real CLI in killable, memory-limited subprocess
workers. ``test_fuzz_ci.py`` is the CI-sized run; ``benchmarks/fuzz.py`` the long campaign."""
