"""Campaign step kinds: one handler per kind, each in its own module, listed in `table`."""
