"""The continuum stages: findcont (the coarse cube, the search, cont.dat) and, later, uvcontsub."""
