"""`python -m server` runs the shared server, like the `ferry-server` command."""

from server.cli import main

raise SystemExit(main())
