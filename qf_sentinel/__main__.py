"""``python -m qf_sentinel``: the ``qf`` command."""

from qf_sentinel.cli import main

main()
