"""Generators of realistic raw data for each source (demo, tests, benchmarks).

Each module writes one source's delivery into a lake folder with the real file names, schemas and,
on request, the real defects, seeded so that the same arguments give byte-identical files.
"""
