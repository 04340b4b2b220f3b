"""The driver conformance kit: each kind's contract, run on whatever driver a rig names."""
