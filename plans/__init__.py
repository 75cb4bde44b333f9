"""Bundled work plans: JSON data files, shipped inside the wheel."""

from __future__ import annotations

from pathlib import Path

PLANS_DIR = Path(__file__).resolve().parent
