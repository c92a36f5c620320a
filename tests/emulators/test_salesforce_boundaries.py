"""The Salesforce emulator shares no code with the client it checks: it never imports sync/."""

import pkgutil
import subprocess
import sys

import emulators

OWN_MODULES = sorted(
    f"emulators.{m.name}"
    for m in pkgutil.iter_modules(emulators.__path__)
    if m.name in {"salesforce", "soql", "server"} or m.name.startswith("sf_")
)


def test_the_salesforce_emulator_modules_exist() -> None:
    assert {"emulators.salesforce", "emulators.soql", "emulators.server"} <= set(OWN_MODULES)


def test_importing_the_salesforce_emulator_loads_nothing_from_sync() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {OWN_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'sync' or m.startswith('sync.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"the emulator imported {result.stdout}"
