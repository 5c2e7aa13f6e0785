"""Loading the campaign file (``RAPPORT_CAMPAIGNS``, YAML) with errors that point at the line.

Without ``RAPPORT_CAMPAIGNS`` the built-in library shipped with Rapport
(``stream/data/campaigns.yaml``) is used; it is also the documented example.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from models.campaign_config import CampaignBook, CampaignFileError, build_book

BUILTIN = "builtin:campaigns.yaml"


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records each mapping's line as ``__line__`` (1-based)."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def builtin_text() -> str:
    return resources.files("stream").joinpath("data/campaigns.yaml").read_text()


def load_book(path: str | None, *, currency: str) -> CampaignBook:
    """Read and validate; raise ``CampaignFileError`` saying file:line: what is wrong."""
    if path is None:
        return parse_book(builtin_text(), source=BUILTIN, currency=currency)
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise CampaignFileError(f"{path}: cannot read the campaign file ({exc.strerror})") from exc
    return parse_book(text, source=str(file), currency=currency)


def parse_book(text: str, *, source: str, currency: str) -> CampaignBook:
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise CampaignFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return build_book(doc, source=source, currency=currency)


def modified_at(path: str | None) -> float | None:
    if path is None:
        return None
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None
