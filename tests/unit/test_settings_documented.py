"""Every setting is documented in the README's settings table, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from stream.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ROWS = dict(re.findall(r"^\| `(RAPPORT_[A-Z_]+)` \| ([^|]*) \|", README, flags=re.MULTILINE))


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_each_setting_has_a_row_in_the_readme(name: str) -> None:
    assert f"RAPPORT_{name.upper()}" in ROWS, f"README has no row for RAPPORT_{name.upper()}"


def same_value(default: object, documented: str) -> bool:
    token = documented.strip().strip("`").replace("_", "")
    if isinstance(default, bool):
        return token.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(token) == float(default)
        except ValueError:
            return False
    return token == str(default)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_each_documented_default_is_the_real_one(name: str) -> None:
    default = Settings.model_fields[name].default
    documented = ROWS.get(f"RAPPORT_{name.upper()}", "")
    if default is None:
        return  # "unset" defaults are explained in words
    assert same_value(default, documented), (name, default, documented)


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    known = {f"RAPPORT_{n.upper()}" for n in Settings.model_fields}
    assert set(ROWS) - known == set()


def test_a_redis_prefix_with_braces_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(redis_prefix="shop{1}:")
