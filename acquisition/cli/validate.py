"""`cryodaq validate`: every problem of a campaign in one pass, touching no instrument."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryodaq.acquisition.campaign.validate import CampaignInvalid, CampaignUnreadable, load_campaign
from cryodaq.acquisition.cli.output import fail


def validate(
    campaign: Annotated[Path, typer.Argument(help="Campaign file")],
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a key: dotted.path=value (rig.* too)")
    ] = [],  # noqa: B006 (typer reads the default)
) -> None:
    """Check a campaign and its rig, touching no instrument; list every problem as
    FILE:LINE:COL key.path: message (exit 1; 2 if the file cannot be read)."""
    try:
        loaded = load_campaign(campaign, set_)
    except CampaignUnreadable as exc:
        raise fail(str(exc), 2) from None
    except CampaignInvalid as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        count = len(exc.problems)
        typer.echo(f"{campaign}: {count} problem{'s' if count > 1 else ''}")
        raise typer.Exit(1) from None
    steps = len(loaded.campaign.steps)
    typer.echo(
        f"{campaign}: OK (campaign {loaded.campaign.name!r}, {steps} step"
        f"{'s' if steps > 1 else ''}, rig {loaded.rig.name!r})"
    )
