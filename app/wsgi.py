"""The WSGI entry point gunicorn loads: `app.wsgi:application`."""

from app.main import create_app
from r13core.settings import Settings

application = create_app(Settings.from_env())
