"""The campaign file: the built-in library validates, every mistake names its line and field."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from models.campaign_config import (
    CampaignFileError,
    ChannelSpec,
    OfferSpec,
    Trigger,
    build_book,
    parse_duration,
)
from models.ledger import Caps, LedgerConfig, QuietHours
from stream.campaign_file import BUILTIN, builtin_text, load_book, parse_book

SOURCE = "test.yaml"

BUILTIN_NAMES = (
    "welcome",
    "browse_abandonment",
    "cart_abandonment",
    "cross_sell",
    "replenishment",
    "win_back",
    "vip_care",
    "spend_ladder",
    "birthday",
    "new_arrival",
    "price_drop",
    "back_in_stock",
    "feedback_survey",
)


# --- the built-in library ------------------------------------------------------------------


def test_the_builtin_library_validates_with_its_thirteen_campaigns() -> None:
    book = load_book(None, currency="EUR")
    assert tuple(c.name for c in book.campaigns) == BUILTIN_NAMES
    assert book.currency == "EUR"
    assert book.fanout_limit == 10_000
    assert book.ledger == LedgerConfig(
        caps=Caps(day=2, week=5),
        channel_caps={"sms": Caps(day=1, week=2)},
        quiet_hours=QuietHours("21:00", "08:00"),
        default_timezone="Europe/Berlin",
        control_group_percent=5.0,
    )
    assert all(c.enabled and c.channels and c.offer.title for c in book.campaigns)
    # Line numbers point into the file: each campaign's line starts with its name.
    lines = builtin_text().splitlines()
    for campaign in book.campaigns:
        assert lines[campaign.line - 1].strip() == f"- name: {campaign.name}"


def test_the_builtin_library_says_what_the_readme_promises() -> None:
    book = load_book(None, currency="NOK")
    assert book.currency == "NOK"
    welcome = book.named("welcome")
    assert welcome is not None
    assert (welcome.trigger, welcome.once, welcome.priority) == (
        Trigger("consent", channel="email"),
        True,
        40,
    )
    assert welcome.offer.kind == "coupon" and welcome.offer.coupon_value == 10.0
    assert welcome.channels == (ChannelSpec("email", "welcome"),)
    cart = book.named("cart_abandonment")
    assert cart is not None
    assert cart.trigger == Trigger(
        "event", event="add_to_cart", delay_ms=2 * 3_600_000, cancel_on=("order_placed",)
    )
    assert cart.audience is not None and cart.audience.evaluate({"cart_items": 1})
    assert not cart.audience.evaluate({"cart_items": 0})
    assert [c.channel for c in cart.channels] == ["email", "push"]
    win_back = book.named("win_back")
    assert win_back is not None
    assert win_back.trigger.segment == "lifecycle:at_risk"
    assert dict(win_back.offer.coupon_by_tier) == {
        "bronze": 10.0,
        "silver": 15.0,
        "gold": 20.0,
        "platinum": 30.0,
    }
    birthday = book.named("birthday")
    assert birthday is not None and birthday.trigger == Trigger("birthday", local_hour=9)
    assert book.named("first_order") is None


def test_load_book_reads_a_file_and_names_it_in_errors(tmp_path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(builtin_text())
    assert load_book(str(good), currency="EUR") == parse_book(
        builtin_text(), source=BUILTIN, currency="EUR"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(builtin_text().replace("cooldown: 7d", "cooldown: 7 days", 1))
    with pytest.raises(CampaignFileError, match=rf"^{bad}:\d+: campaign .*cooldown"):
        load_book(str(bad), currency="EUR")
    with pytest.raises(CampaignFileError, match="cannot read"):
        load_book(str(tmp_path / "missing.yaml"), currency="EUR")


# --- invalid files ---------------------------------------------------------------------------

#: A valid file; the campaign ``greet`` starts on line 8, settings on line 3.
VALID = """\
version: 1

settings:
  quiet_hours: {start: "21:00", end: "08:00"}
  caps: {day: 2, week: 5}

campaigns:
  - name: greet
    trigger: {event: order_placed}
    offer:
      title: "Thanks"
    channels:
      - {channel: email, template: thanks}
"""
CAMPAIGN_LINE = 8
SETTINGS_LINE = 4  # the settings mapping starts at its first key


def edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


def add_to_campaign(text: str) -> str:
    """Insert ``text`` (campaign keys, 4 spaces deep) right after ``- name: greet``."""
    return edit("  - name: greet\n", "  - name: greet\n" + textwrap.indent(text, "    "))


#: name -> (file text, line the message must name, what the message must say about the field).
INVALID = {
    "unknown campaign key": (
        add_to_campaign("colour: red\n"),
        CAMPAIGN_LINE,
        ["unknown key(s) ['colour']"],
    ),
    "unknown trigger key": (
        edit("{event: order_placed}", "{event: order_placed, after: 2h}"),
        CAMPAIGN_LINE,
        ["trigger", "unknown key(s) ['after']"],
    ),
    "bad cooldown": (
        add_to_campaign("cooldown: 2 days\n"),
        CAMPAIGN_LINE,
        ["cooldown", "'2 days'"],
    ),
    "bad delay": (
        edit("{event: order_placed}", "{event: order_placed, delay: soon}"),
        CAMPAIGN_LINE,
        ["delay", "'soon'"],
    ),
    "bad offer expiry": (
        edit('title: "Thanks"\n', 'title: "Thanks"\n      expires: 3x\n'),
        CAMPAIGN_LINE,
        ["offer: expires", "'3x'"],
    ),
    "unknown trigger event": (
        edit("{event: order_placed}", "{event: order_shipped}"),
        CAMPAIGN_LINE,
        ["event", "'order_shipped'"],
    ),
    "unknown cancel_on event": (
        edit("{event: order_placed}", "{event: add_to_cart, cancel_on: [order_paid]}"),
        CAMPAIGN_LINE,
        ["cancel_on", "'order_paid'"],
    ),
    "two trigger kinds": (
        edit("{event: order_placed}", "{event: order_placed, consent: email}"),
        CAMPAIGN_LINE,
        ["trigger", "exactly one", "['event', 'consent']"],
    ),
    "bad audience field": (
        add_to_campaign('audience: "order >= 2"\n'),
        CAMPAIGN_LINE,
        ["audience", "unknown field 'order'", "(did you mean 'orders'?)"],
    ),
    "audience that is not a condition": (
        add_to_campaign('audience: "orders >= "\n'),
        CAMPAIGN_LINE,
        ["audience"],
    ),
    "missing title": (
        edit('title: "Thanks"\n', "kind: notice\n"),
        CAMPAIGN_LINE,
        ["offer: title: required"],
    ),
    "coupon without any coupon": (
        edit('title: "Thanks"\n', 'title: "Thanks"\n      kind: coupon\n'),
        CAMPAIGN_LINE,
        ["offer: coupon", "value"],
    ),
    "coupon without value": (
        edit(
            'title: "Thanks"\n',
            'title: "Thanks"\n      kind: coupon\n      coupon: {min_spend: 30}\n',
        ),
        CAMPAIGN_LINE,
        ["offer: coupon", "`value`"],
    ),
    "unknown offer kind": (
        edit('title: "Thanks"\n', 'title: "Thanks"\n      kind: voucher\n'),
        CAMPAIGN_LINE,
        ["offer: kind"],
    ),
    "unknown channel": (
        edit("{channel: email, template: thanks}", "{channel: fax, template: thanks}"),
        CAMPAIGN_LINE,
        ["channels", "channel"],
    ),
    "channel without template": (
        edit("{channel: email, template: thanks}", "{channel: email}"),
        CAMPAIGN_LINE,
        ["channels", "email: template is required"],
    ),
    "name not snake_case": (
        edit("- name: greet", "- name: Greet-Them"),
        CAMPAIGN_LINE,
        ["`name`"],
    ),
    "priority not a whole number": (
        add_to_campaign("priority: high\n"),
        CAMPAIGN_LINE,
        ["priority"],
    ),
    "holdout above 100": (
        add_to_campaign("holdout_percent: 150\n"),
        CAMPAIGN_LINE,
        ["holdout_percent"],
    ),
    "once not a boolean": (
        add_to_campaign("once: yes please\n"),
        CAMPAIGN_LINE,
        ["once"],
    ),
    "unknown setting": (
        edit("  caps: {day: 2, week: 5}\n", "  caps: {day: 2, week: 5}\n  max_messages: 3\n"),
        SETTINGS_LINE,
        ["settings", "unknown key(s) ['max_messages']"],
    ),
    "negative cap": (
        edit("caps: {day: 2, week: 5}", "caps: {day: -1, week: 5}"),
        SETTINGS_LINE,
        ["settings.caps.day"],
    ),
    "cap for an unknown channel": (
        edit(
            "  caps: {day: 2, week: 5}\n",
            "  caps: {day: 2, week: 5}\n  channel_caps: {fax: {day: 1}}\n",
        ),
        SETTINGS_LINE,
        ["settings.channel_caps", "fax"],
    ),
    "bad quiet hours": (
        edit('{start: "21:00", end: "08:00"}', '{start: "25:00", end: "08:00"}'),
        SETTINGS_LINE,
        ["settings", "quiet hours start", "'25:00'"],
    ),
    "bad default time zone": (
        edit(
            "  caps: {day: 2, week: 5}\n",
            "  caps: {day: 2, week: 5}\n  default_timezone: Mars/Olympus\n",
        ),
        SETTINGS_LINE,
        ["settings", "default_timezone", "Mars/Olympus"],
    ),
    "control group above 100": (
        edit(
            "  caps: {day: 2, week: 5}\n",
            "  caps: {day: 2, week: 5}\n  control_group_percent: 101\n",
        ),
        SETTINGS_LINE,
        ["settings.control_group_percent"],
    ),
    "no campaigns": (
        VALID.split("campaigns:")[0] + "campaigns: []\n",
        1,
        ["`campaigns:`"],
    ),
    "not valid YAML": (
        edit("{event: order_placed}", "{event: order_placed"),
        CAMPAIGN_LINE + 2,
        ["not valid YAML"],
    ),
}


@pytest.mark.parametrize(("text", "line", "says"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_file_names_its_line_and_field(text: str, line: int, says: list[str]) -> None:
    with pytest.raises(CampaignFileError) as raised:
        parse_book(text, source=SOURCE, currency="EUR")
    message = str(raised.value)
    assert message.startswith(f"{SOURCE}:{line}:"), message
    for part in says:
        assert part in message, (part, message)


def test_the_valid_file_of_the_table_is_valid() -> None:
    book = parse_book(VALID, source=SOURCE, currency="EUR")
    (greet,) = book.campaigns
    assert (greet.name, greet.line, greet.trigger) == ("greet", 8, Trigger("event", "order_placed"))
    assert greet.offer == OfferSpec(title="Thanks")


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "models.campaign_config.build_book: the duplicate-name error is "
        "'<source>: campaign names must be unique: [...]' with no line, unlike every other "
        "error (and the module's 'every error names source:line'): the marketer is not told "
        "where the second definition is"
    ),
)
def test_duplicate_names_name_the_line_of_the_second_definition() -> None:
    text = VALID + "  - name: greet\n    trigger: {event: add_to_cart}\n    offer: {title: Hi}\n"
    with pytest.raises(CampaignFileError) as raised:
        parse_book(text, source=SOURCE, currency="EUR")
    message = str(raised.value)
    assert "greet" in message
    assert message.startswith(f"{SOURCE}:14:"), message


def test_duplicate_names_are_rejected() -> None:
    text = VALID + "  - name: greet\n    trigger: {event: add_to_cart}\n    offer: {title: Hi}\n"
    with pytest.raises(CampaignFileError, match=r"^test\.yaml\b.*unique.*\['greet'\]"):
        parse_book(text, source=SOURCE, currency="EUR")


# --- quiet hours written without quotes -------------------------------------------------------


def test_yaml_reads_an_unquoted_clock_time_as_a_base_60_number() -> None:
    assert yaml.safe_load("start: 21:00") == {"start": 1260}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("{start: 21:00, end: 08:00}", QuietHours("21:00", "08:00")),
        ("{start: 21:00, end: 8:00}", QuietHours("21:00", "08:00")),
        ("{start: 22:30, end: 6:15}", QuietHours("22:30", "06:15")),
        ('{start: "21:00", end: "08:00"}', QuietHours("21:00", "08:00")),
        ("{start: 23:00, end: 7:00}", QuietHours("23:00", "07:00")),
        ("{start: 00:30, end: 7:00}", QuietHours("00:30", "07:00")),
        pytest.param(
            "{start: 0:30, end: 7:00}",
            QuietHours("00:30", "07:00"),
            marks=pytest.mark.xfail(
                strict=True,
                raises=CampaignFileError,
                reason=(
                    "models.campaign_config._clock_time only undoes YAML's base-60 integers: "
                    "an unquoted hour 0 (0:30) is no base-60 number in YAML 1.1 and stays the "
                    "string '0:30', which QuietHours rejects, while 1:30 (an int) is accepted"
                ),
            ),
            id="unquoted-hour-0",
        ),
    ],
)
def test_unquoted_quiet_hours_are_accepted_as_clock_times(
    written: str, expected: QuietHours
) -> None:
    book = parse_book(
        edit('{start: "21:00", end: "08:00"}', written), source=SOURCE, currency="EUR"
    )
    assert book.ledger.quiet_hours == expected


# --- build_book from plain data, durations ------------------------------------------------------


def test_build_book_accepts_plain_data_and_applies_defaults() -> None:
    book = build_book(
        {
            "campaigns": [
                {
                    "name": "nudge",
                    "trigger": {"event": "add_to_cart", "delay": "90m"},
                    "offer": {"title": "Hi"},
                    "channels": [{"channel": "push", "template": "t"}],
                }
            ]
        },
        source="test",
    )
    (nudge,) = book.campaigns
    assert nudge.trigger == Trigger("event", event="add_to_cart", delay_ms=90 * 60_000)
    assert (nudge.cooldown_ms, nudge.once, nudge.priority, nudge.holdout_percent) == (
        0,
        False,
        0,
        0,
    )
    assert nudge.offer.expires_ms == 14 * 86_400_000
    assert book.ledger == LedgerConfig(default_timezone="UTC", control_group_percent=5.0)


def test_build_book_errors_name_the_source_even_without_lines() -> None:
    with pytest.raises(CampaignFileError, match=r"^test:0: campaign 'x': trigger: event"):
        build_book(
            {"campaigns": [{"name": "x", "trigger": {"event": "nope"}, "offer": {"title": "t"}}]},
            source="test",
        )


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("90s", 90_000),
        ("30m", 1_800_000),
        ("2h", 7_200_000),
        ("1.5h", 5_400_000),
        ("30d", 30 * 86_400_000),
        ("1w", 604_800_000),
        ("250ms", 250),
        (" 2h ", 7_200_000),
        (90, 90_000),
        (0, 0),
        (1.5, 1_500),
    ],
)
def test_parse_duration(value: object, ms: int) -> None:
    assert parse_duration(value, where="x") == ms


@pytest.mark.parametrize("value", ["2 days", "h", "2y", "", "-1h", True, None])
def test_parse_duration_rejects_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(CampaignFileError, match=r"^here: expected a duration"):
        parse_duration(value, where="here")
