"""The weblog of a run: static HTML pages, thumbnails and plots drawn from WORKDIR."""
