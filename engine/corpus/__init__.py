"""Columnar corpora: datasets' facts as one Parquet table per entity kind, built in parallel on Dask, validated column by column. Imports: dsl, engine.io, engine.facts, engine.ms."""
