"""The router file: one ``.npz`` holding a JSON header and the prompt weights.

Arrays only, read with ``allow_pickle=False``: loading a router never runs code.
``header`` (UTF-8 JSON bytes) holds the models, stage models, calibrations,
escalation weights, operating points and what the router was fitted on;
``prompt_weights`` is models x hash buckets.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ConfigError
from modelyard.routing.learned.features import ANSWER_FEATURES, PROMPT_BUCKETS
from modelyard.routing.learned.model import (
    LearnedRouter,
    OperatingPoint,
    PromptModel,
    StageModel,
)

FORMAT = "modelyard-learned-router/2"
# Version 1 had no calibration or escalation weights: it loads with neither, and decides
# as it did when it was fitted.
READABLE = (FORMAT, "modelyard-learned-router/1")


def save_router(router: LearnedRouter, path: Path) -> None:
    header: dict[str, Any] = {
        "format": FORMAT,
        "models": list(router.models),
        "prompt_buckets": PROMPT_BUCKETS,
        "answer_features": list(ANSWER_FEATURES),
        "prompt_bias": {m: router.prompt_models[m].bias for m in router.models},
        "stages": [
            {
                "prefix": list(prefix),
                "model": model,
                "mean": list(s.mean),
                "scale": list(s.scale),
                "coef": list(s.coef),
                "bias": s.bias,
            }
            for (prefix, model), s in router.stages.items()
        ],
        "calibration": [
            {"prefix": list(prefix), "slope": slope, "intercept": intercept}
            for prefix, (slope, intercept) in router.calibration.items()
        ],
        "escalation": [
            {"prefix": list(prefix), "next": following, "weight": weight}
            for (prefix, following), weight in router.escalation.items()
        ],
        "points": [
            {
                "chain": list(p.chain),
                "threshold": p.threshold,
                "est_cost": p.est_cost,
                "est_quality": p.est_quality,
            }
            for p in router.points
        ],
        "meta": dict(router.meta),
    }
    weights = np.array([router.prompt_models[m].weights for m in router.models], np.float32)
    encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with path.open("wb") as out:
        np.savez_compressed(out, header=encoded, prompt_weights=weights)


def load_router(path: Path) -> LearnedRouter:
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode())
            weights = data["prompt_weights"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"not a router file: {exc}", source=str(path)) from None
    if header.get("format") not in READABLE:
        raise ConfigError(f"unknown router format {header.get('format')!r}", source=str(path))
    if header["answer_features"] != list(ANSWER_FEATURES) or (
        header["prompt_buckets"] != PROMPT_BUCKETS
    ):
        raise ConfigError("the router was fitted with other features", source=str(path))
    models = tuple(header["models"])
    return LearnedRouter(
        models=models,
        prompt_models={
            m: PromptModel(
                array("f", weights[i].astype(np.float32).tobytes()),
                float(header["prompt_bias"][m]),
            )
            for i, m in enumerate(models)
        },
        stages={
            (tuple(s["prefix"]), s["model"]): StageModel(
                s["mean"], s["scale"], s["coef"], float(s["bias"])
            )
            for s in header["stages"]
        },
        calibration={
            tuple(c["prefix"]): (float(c["slope"]), float(c["intercept"]))
            for c in header.get("calibration", [])
        },
        escalation={
            (tuple(e["prefix"]), e["next"]): float(e["weight"])
            for e in header.get("escalation", [])
        },
        points=tuple(
            OperatingPoint(
                tuple(p["chain"]), float(p["threshold"]), p["est_cost"], p["est_quality"]
            )
            for p in header["points"]
        ),
        meta=header["meta"],
    )
