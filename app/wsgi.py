"""The WSGI entry point gunicorn loads: `app.wsgi:application`."""

import os

from app.main import create_app
from r13core.settings import Settings

# Imported in each worker after fork; the worker's parent is the gunicorn master.
application = create_app(Settings.from_env(), sampler_root_pid=os.getppid())
