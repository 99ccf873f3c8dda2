"""Where things are, once for the whole suite."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository root
# Debian's dataset-fashion-mnist (scripts/test.sh installs it): the real data every test uses.
FASHION = Path("/usr/share/datasets/fashion-mnist")
