from __future__ import annotations

from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps caches in ./.hypothesis by default; build/ is ignored by git, the working tree stays clean.
set_hypothesis_home_dir(Path(__file__).resolve().parents[2] / "build" / "hypothesis")
