"""The engine stays headless: importing every module of sync/ loads no Textual."""

import pkgutil
import subprocess
import sys

import sync


def test_importing_every_sync_module_loads_no_textual() -> None:
    modules = [m.name for m in pkgutil.walk_packages(sync.__path__, prefix="sync.")]
    assert "sync.model" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"sync/ imported Textual: {result.stdout}"
