"""almarules: a declarative rule engine for ALMA-style pipeline heuristics."""

__version__ = "0.1.0"
