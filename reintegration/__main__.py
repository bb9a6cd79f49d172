from reintegration.cli import app

app()
