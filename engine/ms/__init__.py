"""Measurement Set access: read-only tables, facts from an MS, visibility selection (Stokes I, binning, LSRK), spws joined. Imports: dsl, engine.io, engine.facts."""
