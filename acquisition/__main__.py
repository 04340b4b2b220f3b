"""`python -m cryodaq.acquisition` runs the cryodaq command line."""

from cryodaq.acquisition.cli.main import main

main()
