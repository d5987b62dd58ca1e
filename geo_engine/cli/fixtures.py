"""fixtures."""
import typer

app = typer.Typer()
