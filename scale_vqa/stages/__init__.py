"""The stage functions of ``scale-vqa build``, by responsibility; :mod:`scale_vqa.pipeline`
runs them in order, fingerprinted and resumable.

- :mod:`~scale_vqa.stages.context`: what the stages share (config, work files, counts)
- :mod:`~scale_vqa.stages.inputs`: annotations import, split
- :mod:`~scale_vqa.stages.extraction`: zoom-path extraction (whole or one shard), slide checks
- :mod:`~scale_vqa.stages.questions`: generate (+ reword), screen, audit
- :mod:`~scale_vqa.stages.publish`: rows by split, review decisions, build, counts for the card
"""
