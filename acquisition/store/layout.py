"""Names of what a run directory holds."""

#: The Zarr run store, the campaign's progress, the run summary, the figures, array data.
STORE, PROGRESS, SUMMARY, FIGURES, DATA = (
    "store", "progress.json", "summary.json", "figures", "data"
)  # fmt: skip
#: The campaign as it ran (overrides applied, rig inline).
CAMPAIGN = "campaign.json"
