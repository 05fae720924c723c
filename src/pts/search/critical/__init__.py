"""Critical tokens by rollout sampling ("Critical Tokens Matter", Lin et al., arXiv 2411.19943, section 2).

For an incorrect trajectory t_0..t_{L-1}, the score of token i is the share of
K rollouts from prompt + t_0..t_i (the prefix that *includes* token i) that
the oracle accepts. The paper's critical token is the first token whose score
is 0 and after which no token scores above 5% (3 of 64); when every such
candidate is followed by a higher score, the authors' code falls back to the
last candidate.

Two ways to get the scores:

* ``scan`` (the paper): K rollouts at every position.
* ``search``: success along a failing trajectory is near-monotone, so the first
  zero is found by a bisection steered by probes (``probe_samples``), only its
  final step confirmed with all K rollouts; every score is drawn only until its
  question is settled ("not zero" at the first success); and the "later tokens
  stay low" condition is checked by the rollouts that went through those tokens
  (``pool``), each token drawing only what they fall short of. On a monotone
  (non-increasing) score curve it returns the scan's token and rule.

Both modes draw a position's K rollouts in the same seeded stages
(:attr:`CriticalSettings.stages`: 2, 4, 8, 16, 32, 64 at K = 64) with seeds
fixed by the prefix, so every score the search completes equals the scan's at
that position: the modes differ only in which positions they look at and how
far they draw. When the trajectory's sampling probabilities are
known (trajectories sampled by pts's engines), both look only at tokens the
bound allows to be critical (:mod:`~pts.search.critical.bound`).

Everything here talks to the engine through asks (an estimator and the
samples it wants per prefix) yielded by step generators, so many trajectories
share one engine call per round (many queries at once: :mod:`pts.work`). One module per idea:

==================  ==========================================================================
``rule``            the paper's rule on a list of scores (:func:`critical_position`)
``bound``           which tokens can be critical at all: the sampling-probability bound
                    (1 - pi >= 1/K - margin), so both modes skip the others
``settings``        :class:`CriticalSettings`: K, mode, threshold, probes, Pass@k; their checks
``staged``          :class:`StagedEstimator` (sampling in fixed stages, counting each rollout at
                    the later prefixes it went through) and :func:`fulfil` (many asks, one
                    engine call per sampling params)
``rounds``          one query's stepping loop: :func:`rounds` and :func:`run_rounds`
``scores``          :class:`TrajectoryScores`: one trajectory's scores as known so far
``scan``, ``search``  the two modes, as step generators over a :class:`TrajectoryScores`
``alternatives``    the sampler's next-token distribution without the critical token
``passk``           Pass@k with and without the critical token
``result``          :class:`CriticalResult`: what scoring one trajectory found
``finder``          :class:`CriticalTokenFinder`: one query's trajectories, scored, plus Pass@k
``query``           :class:`QueryAnalyser`: one query of ``pts critical``, from sampling its
                    trajectories to its records (the unit of work of ``--ray``)
==================  ==========================================================================

The ``pts critical`` pipeline (the queries, writing, resuming, Ray) is
:mod:`pts.jobs.critical`.
"""
