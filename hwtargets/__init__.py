"""The bundled hardware target files: one TOML per target, named after the target's short name.

This package holds data, not code; planner.targets.catalog reads and validates the files. It is a package (rather
than a loose folder) so that the files ship with an installed wheel via package-data.
"""

from __future__ import annotations

from pathlib import Path

TARGET_DIR: Path = Path(__file__).resolve().parent
RUNTIME_DIR: Path = TARGET_DIR / "runtimes"  # runtime profiles (planner.targets.runtime), one TOML each
SERVING_DIR: Path = TARGET_DIR / "serving"  # serving stacks' own costs (planner.fleet.overhead), one TOML each


def bundled_files() -> list[Path]:
    """Sorted so that "all" and error messages come out in the same order on every machine."""
    return sorted(TARGET_DIR.glob("*.toml"))
