"""`bazel run //tools:observatory -- up|down|status|logs|doctor` (see tools/launcher/cli.py)."""

import sys

from tools.launcher.cli import main

if __name__ == "__main__":
    sys.exit(main())
