"""The expert review: pathologists answer blind, then accept / reject / edit (docs/review.md).

Modules: ``items`` (questions + zoom-path images from a work folder or a build), ``store``
(the append-only SQLite database), ``checks`` (constraint checkers and text-only
adversaries per item and per edit), ``server`` (the JSON API and ``page.html``),
``figures`` (accuracy with images, cannot-tell and acceptance rates, kappa), ``apply``
(the build's review step), ``interop`` (JSONL and Label Studio).
"""
