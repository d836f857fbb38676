"""What the tests share, and the benchmarks may import too (with ``tests/`` on ``sys.path``):

- ``browser``: a minimal CDP client driving a real headless Chromium (``Browser``, ``find_chromium``).
- ``hostile``: strings that break naive code (markup, control characters, RTL, emoji, huge values).
- ``corpora``: seeded synthetic labelled corpora (topic sentences and records) for the Dagster-level tests.
"""
