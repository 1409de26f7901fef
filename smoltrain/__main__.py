"""`python -m smoltrain ...` is the `smoltrain` command; `accelerate launch -m smoltrain run PRESET --name NAME`
runs one training process per GPU with the user's own accelerate config (README, "More than one GPU")."""

import sys

from smoltrain.cli import main

sys.exit(main())
