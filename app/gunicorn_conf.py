"""gunicorn settings, from r13's own settings (environment first)."""

from r13core.settings import Settings

_settings = Settings.from_env()

bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
preload_app = False  # each worker opens its own storage after fork
graceful_timeout = 10
accesslog = None
