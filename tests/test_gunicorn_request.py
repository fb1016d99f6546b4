"""app/gunicorn_request.py: the same answers as gunicorn's own request set-up, made once."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import message, wsgi
from hypothesis import given
from hypothesis import strategies as st

from app import gunicorn_request
from app.gunicorn_request import ErrorStreams, peer_trust

GUNICORNS_CHECK = message.HeaderPolicy._peer_is_trusted_proxy
GUNICORNS_WRAPPER = wsgi.WSGIErrorsWrapper


@pytest.fixture
def error_log() -> Iterator[logging.Logger]:
    """gunicorn's error logger with no handlers of its own; restored afterwards."""
    log = logging.getLogger(gunicorn_request.ERROR_LOGGER)
    saved = log.handlers[:]
    log.handlers = []
    try:
        yield log
    finally:
        log.handlers = saved


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """install(), undone after the test (monkeypatch restores what it replaced)."""
    monkeypatch.setattr(wsgi, "WSGIErrorsWrapper", wsgi.WSGIErrorsWrapper)
    monkeypatch.setattr(message.HeaderPolicy, "_peer_is_trusted_proxy", GUNICORNS_CHECK)
    assert gunicorn_request.install()


def _cfg(errorlog: str = "-", allow: str = "") -> Config:
    cfg = Config()
    cfg.set("errorlog", errorlog)
    cfg.set("forwarded_allow_ips", allow)
    return cfg


HANDLER_SETS = {
    "none": [],
    "one stream": ["stream"],
    "stream, non-stream, stream": ["stream", "null", "stream"],
}


def _handlers(kinds: list[str]) -> list[logging.Handler]:
    return [
        logging.StreamHandler(io.StringIO()) if kind == "stream" else logging.NullHandler()
        for kind in kinds
    ]


@pytest.mark.parametrize("errorlog", ["-", "/var/log/r13-error.log"])
@pytest.mark.parametrize("kinds", list(HANDLER_SETS.values()), ids=list(HANDLER_SETS))
def test_the_streams_are_gunicorns(
    error_log: logging.Logger, errorlog: str, kinds: list[str]
) -> None:
    error_log.handlers = _handlers(kinds)
    cfg = _cfg(errorlog)
    assert ErrorStreams(cfg).streams == GUNICORNS_WRAPPER(cfg).streams


class Recording(io.StringIO):
    """A stream that remembers its calls, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(f"write {s!r}")
        return super().write(s)

    def flush(self) -> None:
        self.calls.append("flush")
        super().flush()


def test_a_write_reaches_every_stream_and_is_flushed(
    error_log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, third = Recording(), Recording(), Recording()
    error_log.handlers = [logging.StreamHandler(s) for s in (first, second, third)]
    errors = ErrorStreams(_cfg("-"))  # standard error, then every handler but gunicorn's first
    errors.write("boom\n")
    assert capsys.readouterr().err == "boom\n"
    assert first.calls == []
    assert second.calls == third.calls == ["write 'boom\\n'", "flush"]
    assert errors.writable()


def test_a_log_file_reopened_later_gets_the_next_write(error_log: logging.Logger) -> None:
    # gunicorn's USR1 reopens its log files: a handler's stream changes under a live worker.
    handler = logging.StreamHandler(io.StringIO())
    error_log.handlers = [handler]
    errors = ErrorStreams(_cfg("/var/log/r13-error.log"))
    reopened = io.StringIO()
    handler.setStream(reopened)
    errors.write("after\n")
    assert reopened.getvalue() == "after\n"


def test_one_errors_object_per_worker(installed: None) -> None:
    cfg = _cfg()
    first, second = wsgi.base_environ(cfg), wsgi.base_environ(cfg)
    assert isinstance(first["wsgi.errors"], ErrorStreams)
    assert first["wsgi.errors"] is second["wsgi.errors"]
    assert wsgi.base_environ(_cfg())["wsgi.errors"] is not first["wsgi.errors"]  # another cfg


def test_install_twice_wraps_once(installed: None) -> None:
    check = message.HeaderPolicy._peer_is_trusted_proxy
    shared = wsgi.WSGIErrorsWrapper
    assert gunicorn_request.install()
    assert message.HeaderPolicy._peer_is_trusted_proxy is check
    assert wsgi.WSGIErrorsWrapper is shared
    assert check.gunicorns is GUNICORNS_CHECK


def test_install_leaves_a_different_gunicorn_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(message.HeaderPolicy, "_peer_is_trusted_proxy")
    monkeypatch.setattr(wsgi, "WSGIErrorsWrapper", GUNICORNS_WRAPPER)
    assert not gunicorn_request.install()
    assert wsgi.WSGIErrorsWrapper is GUNICORNS_WRAPPER
    assert not hasattr(message.HeaderPolicy, "_peer_is_trusted_proxy")  # none put in its place


PEERS = [
    ("127.0.0.1", 40000),
    ("10.1.2.3", 1),
    ("::1", 2, 0, 0),
    ("2001:db8::7", 3, 0, 0),
    ("not an address", 4),
    "/run/r13.sock",
    b"",
]
ALLOW = ["", "127.0.0.1", "*", "10.0.0.0/8", "::1,2001:db8::/32"]


def _policy(cfg: Config, peer: Any) -> Any:
    return SimpleNamespace(cfg=cfg, peer_addr=peer)


@pytest.mark.parametrize("allow", ALLOW)
@pytest.mark.parametrize("peer", PEERS, ids=[repr(p) for p in PEERS])
def test_peer_trust_answers_as_gunicorn(allow: str, peer: Any) -> None:
    cfg = _cfg(allow=allow)
    ours = peer_trust(GUNICORNS_CHECK)
    assert ours(_policy(cfg, peer)) == GUNICORNS_CHECK(_policy(cfg, peer))


@given(
    host=st.one_of(st.ip_addresses().map(str), st.text(max_size=20)),
    port=st.integers(0, 65535),
)
def test_with_no_trusted_proxy_no_tcp_peer_is_trusted(host: str, port: int) -> None:
    cfg = _cfg(allow="")
    ours = peer_trust(GUNICORNS_CHECK)
    assert ours(_policy(cfg, (host, port))) is False
    assert GUNICORNS_CHECK(_policy(cfg, (host, port))) is False


def test_r13s_workers_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.gunicorn_conf as conf
    from app import gunicorn_response
    from app.live import lifecycle

    monkeypatch.setattr(wsgi, "WSGIErrorsWrapper", GUNICORNS_WRAPPER)
    monkeypatch.setattr(message.HeaderPolicy, "_peer_is_trusted_proxy", GUNICORNS_CHECK)
    monkeypatch.setattr(wsgi, "Response", gunicorn_response._BaseResponse)
    monkeypatch.setattr(util, "write_error", util.write_error)
    monkeypatch.setattr(lifecycle, "_worker", None)
    cfg = _cfg()
    conf.post_fork(None, SimpleNamespace(alive=True, cfg=cfg))
    assert "keepalive" in vars(cfg)  # its settings are plain attributes now
    assert hasattr(message.HeaderPolicy._peer_is_trusted_proxy, "gunicorns")
    one = _cfg()
    assert wsgi.base_environ(one)["wsgi.errors"] is wsgi.base_environ(one)["wsgi.errors"]
    # ... and the fast answer is the one that applies: r13 trusts no forwarded header.
    cfg = Config()
    cfg.set("forwarded_allow_ips", conf.forwarded_allow_ips)
    assert cfg.forwarded_allow_ips == []


def _plain_settings(cfg: Config) -> list[str]:
    return [name for name in cfg.settings if not hasattr(Config, name)]


def test_freeze_makes_every_setting_a_plain_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(allow="127.0.0.1")
    cfg.set("keepalive", 7)
    expected = {name: cfg.settings[name].get() for name in _plain_settings(cfg)}
    assert gunicorn_request.freeze(cfg) == len(expected) > 50

    def refuse(self: Any, name: str) -> Any:
        raise AssertionError(f"{name} read through Config.__getattr__")

    monkeypatch.setattr(Config, "__getattr__", refuse)
    assert {name: getattr(cfg, name) for name in expected} == expected
    assert cfg.keepalive == 7 and cfg.forwarded_allow_ips == ["127.0.0.1"]
    assert cfg.post_request is expected["post_request"]  # hooks stay plain functions


def test_a_setting_set_after_freeze_is_read_back() -> None:
    cfg = _cfg()
    gunicorn_request.freeze(cfg)
    cfg.set("keepalive", 9)
    cfg.set("forwarded_allow_ips", "10.0.0.1")
    assert cfg.keepalive == 9 and cfg.forwarded_allow_ips == ["10.0.0.1"]
    assert cfg.keepalive == cfg.settings["keepalive"].get()
    wrapped = cfg.set
    gunicorn_request.freeze(cfg)  # twice: one wrapper
    assert cfg.set is wrapped
    cfg.set("keepalive", 3)
    assert cfg.keepalive == 3


def test_config_properties_stay_configs() -> None:
    cfg = _cfg()
    cfg.set("sendfile", False)
    before = (cfg.sendfile, cfg.worker_class_str, cfg.is_ssl, cfg.forwarded_allow_networks())
    gunicorn_request.freeze(cfg)
    assert "sendfile" not in vars(cfg) and "worker_class" not in vars(cfg)
    assert (cfg.sendfile, cfg.worker_class_str, cfg.is_ssl, cfg.forwarded_allow_networks()) == (
        before
    )


def test_freeze_leaves_other_objects_alone() -> None:
    other = SimpleNamespace(keepalive=2)
    assert gunicorn_request.freeze(other) == 0
    assert vars(other) == {"keepalive": 2}
