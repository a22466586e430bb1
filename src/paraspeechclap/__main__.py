"""``python -m paraspeechclap`` (also what ``torchrun -m paraspeechclap train`` runs)."""

import sys

from .cli.main import main

sys.exit(main())
