"""Invalid settings are refused when the settings are read, naming the setting.

The README promises that an invalid value stops the command before anything
starts; these were accepted and failed later, deep inside a client or faust.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.settings import Settings

REFUSED = [
    ("log_level", "verbose"),
    ("log_level", ""),
    ("redis_url", "localhost"),
    ("redis_url", "localhost:6379"),
    ("redis_url", "http://localhost:6379"),
    ("redis_url", "redis://localhost:port/0"),
    ("kafka_url", "localhost:9092"),
    ("kafka_url", "kafka://"),
    ("kafka_url", "kafka://host:port"),
    ("kafka_url", "kafka://host:0"),
    ("kafka_url", "kafka://a:9092;;b:9092"),
    ("kafka_url", "http://host:9092"),
]

ACCEPTED = [
    ("log_level", "DEBUG", "debug"),
    ("log_level", "Warning", "warning"),
    ("redis_url", "redis://127.0.0.1:6379/0", None),
    ("redis_url", "rediss://user:secret@cache.example:6380/2", None),
    ("redis_url", "unix:///run/redis.sock", None),
    ("kafka_url", "kafka://broker", None),
    ("kafka_url", "kafka://a:9092;b:9093", None),
    ("kafka_url", "kafka://a:9092,b:9093", None),
    ("kafka_url", "kafka://[::1]:9092", None),
]


@pytest.mark.parametrize(("name", "value"), REFUSED)
def test_an_invalid_value_is_refused_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{name: value})
    assert [err["loc"] for err in caught.value.errors()] == [(name,)]


@pytest.mark.parametrize(("name", "value", "read_as"), ACCEPTED)
def test_a_valid_value_is_accepted(name: str, value: str, read_as: str | None) -> None:
    assert getattr(Settings(**{name: value}), name) == (read_as or value)


def test_an_invalid_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPORT_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="must be one of debug, info"):
        Settings()
