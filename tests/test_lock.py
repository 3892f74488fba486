"""requirements.lock (`make lock`) agrees with pyproject.toml and constraints.txt.

The lock is what an operator installs with `pip install --require-hashes`; constraints.txt
is what `make install` and CI install. These tests fail when one is changed without the
other, so the two installs cannot drift apart. Pure file reads: no network.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# pip-compile --allow-unsafe may pin pip itself, which constraints.txt leaves to the venv
UNFROZEN = {"pip"}


def _lock() -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, its sha256 hashes)."""
    text = (ROOT / "requirements.lock").read_text()
    entries: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split(" ", 1)[0].strip()
        if "==" not in head or head.startswith("#"):
            continue
        name, version = head.split("==")
        entries[canonicalize_name(name)] = (
            Version(version),
            re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
        )
    return entries


def _constraints() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _same_release(locked: Version, pinned: Version) -> bool:
    # torch is locked as 2.13.0+cpu (the CPU build) where constraints.txt pins 2.13.0,
    # which PEP 440 satisfies with any local build label
    return locked.public == pinned.public


def test_every_locked_package_has_a_hash() -> None:
    lock = _lock()
    assert len(lock) > 20
    assert [name for name, (_, hashes) in lock.items() if not hashes] == []


def test_lock_pins_the_constraints_versions() -> None:
    constraints = _constraints()
    drift = {
        name: (str(version), str(constraints.get(name)))
        for name, (version, _) in _lock().items()
        if name not in UNFROZEN
        and (name not in constraints or not _same_release(version, constraints[name]))
    }
    assert drift == {}, "requirements.lock differs from constraints.txt: run `make lock`"


def test_lock_covers_the_runtime_dependencies() -> None:
    """Every main and `local` dependency in pyproject.toml is locked at its pinned version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["local"]]
    lock = _lock()
    missing = []
    for spec in map(Requirement, wanted):
        locked = lock.get(canonicalize_name(spec.name))
        if locked is None or not spec.specifier.contains(locked[0]):
            missing.append(str(spec))
    assert missing == [], "requirements.lock lacks these: run `make lock`"


def test_lock_covers_every_runtime_pin_in_constraints() -> None:
    """The closure of the runtime dependencies, as installed, is all in the lock."""
    from importlib.metadata import PackageNotFoundError, requires

    lock = _lock()
    seen: set[str] = set()
    todo = [Requirement("modelyard[local]")]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            declared = requires(req.name) or []
        except PackageNotFoundError:
            continue  # an optional dependency for another platform or Python
        for text in declared:
            dep = Requirement(text)
            env_ok = dep.marker is None or any(
                dep.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})
            )
            if env_ok:
                todo.append(dep)
    closure = {key.split("[")[0] for key in seen} - {"modelyard"}
    constraints = _constraints()
    pinned = {name for name in closure if name in constraints}
    assert sorted(pinned - lock.keys()) == [], "runtime packages missing: run `make lock`"
    assert {n for n in pinned if not _same_release(lock[n][0], constraints[n])} == set()
