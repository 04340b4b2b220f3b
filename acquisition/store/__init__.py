"""The run store: the Zarr layout, its writer, reader and recovery, LJH export."""
