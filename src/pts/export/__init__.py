"""Pivotal tokens into files that TRL, optillm and llama.cpp read.

One module per output format: ``dpo`` (:mod:`pts.export.dpo`), ``steering``
(:mod:`pts.export.steering`), ``control-vector`` (:mod:`pts.export.control_vector`).
Every format reads pts records and the original PTS tool's files
(:mod:`pts.export.records`). The ``pts export`` job that drives them is
:mod:`pts.jobs.export`.
"""
