"""`python -m acquisition` runs the cryodaq command line."""

from acquisition.cli import main

main()
