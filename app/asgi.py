"""The ASGI entry point for uvicorn: the app built from the environment."""

from app.main import create_app

app = create_app()
