"""Benchmarks: the offline synthetic one (demo face) and POPE / COCO-derived sets (paper face).

Both write the same on-disk schema, defined in :mod:`vrp.benchmark.schema`.
"""
