"""The acquisition engine: block sources, the trigger engine, sinks."""
