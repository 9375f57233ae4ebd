"""`python -m interfaces.tui`."""

from interfaces.tui.main import main

if __name__ == "__main__":
    raise SystemExit(main())
