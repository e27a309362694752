"""`python -m desktop` runs the desktop app, like the `ferry` command."""

from desktop.cli import main

raise SystemExit(main())
