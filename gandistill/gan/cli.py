"""Command registration for this area (placeholder until implemented)."""
import typer


def register(app: typer.Typer) -> None:  # noqa: D401
    return None
