"""Steering a model with steering vectors or control vectors added to its residual stream.

Two kinds of vectors, in the formats other tools read:

* **Steering vectors** (JSONL, the optillm autothink dataset shape written by
  ``pts export --format steering``): one vector per pivotal token with its
  ``pivot_context``, ``is_positive``, ``prob_delta`` and ``steering_layer``.
  Applied the way optillm's ``autothink/steering.py`` does: the tokens seen so
  far are matched against the tail of every pivot context (its
  ``pivot_context_ids`` when the row has them, else the re-tokenized
  ``pivot_context`` text as optillm does; the context cut to its last 256
  tokens, plus its last 4, 8 and 12 tokens; a history shorter than a context
  matches on its last ``max(4, len/2)`` tokens; the longest match wins), and
  the matched vector, normalised to unit length and times ``strength``, is
  added to the output of decoder layer ``steering_layer`` at the position being
  processed; a negative pivot's vector (``is_positive: false``) is subtracted,
  unless the row says ``adds_toward_success: true`` (pts export's files: the
  vector already points toward success, so it is always added, as optillm does).
  Where pts differs: optillm hooks one configured layer (``target_layer``) for
  every vector, multiplies the strength by ``|prob_delta|`` clipped to
  [0.1, 2] (``scale_by_delta`` here) and caps the product at 3; pts adds each
  vector at its own ``steering_layer`` with the strength as given. optillm
  matches once, on the prompt, and keeps that vector for the whole reply
  (``match="once"``); by default pts matches again after every generated token
  and keeps the latest match (``"continuous"``), since pivot contexts end
  inside replies; ``"local"`` adds a vector only at positions whose context
  matches it (the position that predicts the pivot token).
* **Control vectors** (GGUF, the format repeng's ``ControlVector.export_gguf``
  writes and llama.cpp loads with ``--control-vector``: architecture
  ``controlvector``, one F32 tensor ``direction.<n>`` per layer). Applied as
  llama.cpp does: ``strength * direction.<n>`` (not normalised) is added to the
  output of layer ``n`` at every position.

Layer numbers, everywhere in pts: layer ``n`` is the decoder block
``model.model.layers[n]`` (0-based), and a vector for layer ``n`` is added to
that block's output, which is ``output_hidden_states[n + 1]`` of a Hugging Face
forward pass. This is repeng's numbering (it reads ``hidden_states[layer + 1]``
and exports ``direction.<layer>``), llama.cpp's (it adds ``direction.<il>``
after block ``il``; it rejects ``direction.0``) and optillm's (``target_layer``
indexes ``model.model.layers``).

Modules, in the order a steered generation uses them:

* :mod:`pts.steering.vectors`: the vector files (steering-vector JSONL, the
  GGUF :class:`~pts.steering.vectors.ControlVector` that ``pts export`` writes
  and ``pts steer`` reads);
* :mod:`pts.steering.layers`: layer numbers given on the command line, and the
  model's decoder blocks;
* :mod:`pts.steering.matching`: optillm's matching of the recent tokens
  against pivot contexts;
* :mod:`pts.steering.apply`: what each row adds at each layer (context steering,
  control steering), built from the vectors and checked against the model;
* :mod:`pts.steering.hooks`: the forward hooks that add it;
* :mod:`pts.steering.generate`: batched sampling with the hooks installed;
* :mod:`pts.steering.report`: the paired base-vs-steered report.

The ``pts steer`` pipeline (options, loading, writing) is :mod:`pts.jobs.steer`::

    from pts.jobs.steer import SteerConfig, run
    print(run(SteerConfig(steering_path="steering.jsonl", max_examples=10)).format())
"""
