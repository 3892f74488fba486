"""Evaluation harness: send a suite of prompts to several models through the gateway, score
the answers, and compare quality, cost and latency.

What lives here: the suite format (``suite``), the scorers (``scorers``, with a small JSON
Schema validator in ``jsonschema``), the gateway client (``client``), the resumable run
directory (``store``), the runner (``runner``), and the reports (``summary``, ``html``,
``export``). The command line is ``cli/eval.py``; nothing here prints.

Suite format: JSON Lines, one item a line::

    {"id": "q1",
     "prompt": "What is 2+2?",            # or "messages": [{"role": ..., "content": ...}]
     "reference": "4",                    # optional; what the scorer compares against
     "scorer": {"type": "numeric", "extract": "last", "rel_tol": 1e-6},   # optional
     "request": {"max_tokens": 64}}       # optional; extra chat-completions fields

Scorer types and their parameters (an item without ``scorer`` gets the run's default):

- ``exact``: the answer equals ``reference``; ``normalize`` (default true) folds case
  and whitespace.
- ``numeric``: a number taken from the answer (``extract``: ``last`` (default),
  ``first`` or ``json``, the JSON object's ``answer`` field) equals the reference's
  within ``rel_tol`` (default 1e-6).
- ``regex``: ``pattern`` (default: ``reference``) is found in the answer;
  ``flags`` may hold ``i``, ``m``, ``s``.
- ``contains``: every string of ``values`` (default: ``[reference]``) is in the
  answer; ``ignore_case`` (default false).
- ``json_schema``: the answer (or the first JSON object in it) parses and validates
  against ``schema`` (type, properties, required, items, enum, additionalProperties).
- ``judge``: a model (``model``, else the run's ``--judge``) grades the answer against
  the reference with a fixed rubric and answers ``{"score": 0..1}``; ``criteria`` adds
  to the rubric.

A run directory holds ``run.json`` (the command's settings) and ``results.jsonl``, one
result per (item, model) appended as it arrives, so a re-run skips what is done.
"""
