"""The `cryodaq` command line."""
