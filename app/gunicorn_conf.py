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
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn): two
# registries on one machine would fight over it. Keep it with the data.
control_socket = str((_settings.data_dir / "gunicorn.ctl").resolve())
# r13 builds every URL it renders from R13_PUBLIC_URL; never trust forwarded headers.
forwarded_allow_ips = ""
