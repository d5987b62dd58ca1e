"""users."""
import typer

app = typer.Typer()
