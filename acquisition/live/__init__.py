"""The live view: a run (being written or finished) served as a page in the browser."""
