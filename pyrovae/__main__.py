"""``python -m pyrovae``: the ``pyrovae`` command (:func:`pyrovae.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
