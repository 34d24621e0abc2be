"""The parts of question generation, one responsibility each.

:mod:`curation.generate` is the public facade (``Generator``, ``GeneratorConfig``,
``generate_questions``, ``Regenerator``); these modules hold what it assembles:

- :mod:`.config`: :class:`GeneratorConfig` and the type/pool constants;
- :mod:`.pools`: diagnosis-reserved patients and the organ x diagnosis x split pools;
- :mod:`.candidates`: realisable slot pairs of a pool (four value cells, plausible, even);
- :mod:`.sets`: complementary-set formation and the question record of one path;
- :mod:`.scarcity`: demand-aware path choice and the types that form first;
- :mod:`.order`: the turns the pools' set streams take;
- :mod:`.dx_exact`: diagnosis pools packed exactly (an integer programme per pool);
- :mod:`.flow`: the sparse linear / integer programme it and the volume bound are written in;
- :mod:`.naive`: the release-style one-swap baseline;
- :mod:`.rebalance`: dropping whole sets so splits and types keep their shares;
- :mod:`.stats`: the figures of a run.
"""
