"""Coverage-guided fuzzing of one target with atheris (libFuzzer), seeded from its corpus.

    pip install -e '.[fuzz]'
    python -m tests.fuzz.atheris_main chat_request -max_total_time=600

Runs in the foreground until a crash or the time is up; libFuzzer's flags
pass through. New inputs go to ``build/fuzz/TARGET`` (not the corpus); a
crash is written as ``crash-*`` in the working directory: fix it, then copy
the input into ``tests/fuzz/corpus/TARGET/`` so ``test_targets.py`` replays it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["modelyard"]):
    from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.atheris_main {{{','.join(TARGETS)}}} [flags]")
    target = argv[1]
    found = Path("build/fuzz") / target
    found.mkdir(parents=True, exist_ok=True)
    args = [argv[0], *argv[2:], str(found), str(CORPUS / target)]
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
