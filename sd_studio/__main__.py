"""`python -m sd_studio` runs the command line."""

from sd_studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
