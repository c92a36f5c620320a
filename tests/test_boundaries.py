"""The emulators are the other side of the wire: they and the engine share no code either way,
so that a misreading of a wire format cannot hide in both the client and its emulator."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_no_emulator_module_imports_the_engine() -> None:
    modules = imported_packages("emulators")
    assert "emulators/salesconnect.py" in modules and "emulators/salesforce.py" in modules
    offenders = {name for name, imports in modules.items() if imports & {"sync", "tui"}}
    assert offenders == set()


def test_no_engine_module_imports_the_emulators() -> None:
    modules = imported_packages("sync")
    assert "sync/engine.py" in modules
    offenders = {name for name, imports in modules.items() if "emulators" in imports}
    assert offenders == set()


def test_every_fail_point_in_the_engine_is_one_the_crash_tests_use() -> None:
    """The crash tests crash at each of `sync.failpoints.POINTS`: a new point in the engine
    that is not listed there would never be crashed at."""
    from sync import failpoints

    used = set()
    for path in (ROOT / "sync").rglob("*.py"):
        used |= set(re.findall(r'failpoint\("([a-z_]+)"\)', path.read_text()))
    assert used == set(failpoints.POINTS)
