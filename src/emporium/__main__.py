"""`python -m emporium ...` is the `emporium` command."""

import sys

from emporium.cli import main

sys.exit(main())
