"""Products on disk: FITS images (pipeline names, headers, atomic and streamed writes), cont.dat. Imports: dsl, engine.io, kernels."""
