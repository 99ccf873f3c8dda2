"""``python -m trainer``: the same as ``mnist-train``."""

import sys

from trainer.cli import main

sys.exit(main())
