"""Entry point of the frozen app: the same `sd_studio.cli.main` as the `sd-studio` console script."""

import sys

from sd_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
