"""Dask: the cluster connection, distributed analysis, board tasks."""
