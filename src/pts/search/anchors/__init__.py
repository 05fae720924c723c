"""Thought anchors: which sentences of a response decide its outcome (Bogdan et al. 2025, arXiv 2506.19143).

One module per idea: ``sentences`` (the split rule, on token boundaries), ``categories`` (a rule-based labeller),
``similarity`` (when a resampled sentence is "the same": all-MiniLM-L6-v2 or exact text), ``importance`` (pooled
draws and the importance of a sentence, pure), ``settings`` (the options), ``analysis`` (one response measured:
sequential sampling, then verification). docs/anchors.md describes the method.
"""
