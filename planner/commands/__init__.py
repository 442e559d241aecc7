"""Subcommands of `plan`: one module each, with NAME, HELP, add_arguments(parser) and run(args) -> exit code."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

_MODULES = ["targets", "check", "diff", "report", "calibrate", "predict", "validate"]

SUBCOMMANDS: dict[str, ModuleType] = {}
for _name in _MODULES:
    _mod = import_module(f"planner.commands.{_name}")
    SUBCOMMANDS[_mod.NAME] = _mod
