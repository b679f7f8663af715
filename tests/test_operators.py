"""Operators: who may be rung, in which order each strategy rings them, and their SMS commands."""
import datetime
import random
import time
import zoneinfo

import pytest

from appliance.config import demo_config, validate
from appliance.operators import (OFFLINE, ON_CALL, PAUSED, READY, RINGING, WRAP_UP, OperatorBoard,
                                 parse_sms_command)

TZ = "Europe/Sofia"
GROUPS = ["admissions"]
ALL_DAY = [["00:00", "24:00"]]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def around_today():
    """Yesterday, today and tomorrow in the box's zone, so that midnight during a test changes nothing."""
    today = datetime.datetime.now(zoneinfo.ZoneInfo(TZ)).date()
    return [(today + datetime.timedelta(days=d)).isoformat() for d in (-1, 0, 1)]


def shift_open_today_only_by_exception():
    """Closed every weekday, but open all day by exception around today: open now."""
    return {"weekly": {}, "exceptions": [{"date": day, "hours": ALL_DAY} for day in around_today()]}


def shift_closed_today_by_exception():
    """Open all week, but closed by exception around today: closed now."""
    return {"weekly": {day: ALL_DAY for day in WEEKDAYS},
            "exceptions": [{"date": day, "hours": []} for day in around_today()]}


def shift_hours_excluding_now():
    """Open every day, but only during hours at least an hour away from now: closed now."""
    hour = datetime.datetime.now(zoneinfo.ZoneInfo(TZ)).hour
    hours = [["13:00", "23:00"]] if hour < 12 else [["01:00", "11:00"]]
    return {"weekly": {day: hours for day in WEEKDAYS}}


def shift_all_week():
    return {"weekly": {day: ALL_DAY for day in WEEKDAYS}}


def make_board(*specs, rng=None):
    """A board of operators validated through the real configuration; ``specs`` are (id, extra fields)."""
    document = demo_config()
    document["operators"] = [dict({"id": op_id, "name": op_id.title(), "number": f"+35988800010{i}",
                                   "groups": list(GROUPS)}, **extra) for i, (op_id, extra) in enumerate(specs)]
    return OperatorBoard(validate(document)["operators"], rng=rng)


def board_of(*ids, rng=None):
    return make_board(*[(op_id, {}) for op_id in ids], rng=rng)


def ids(operators):
    return [op.id for op in operators]


def ringing_order(board, strategy, queue_id="bachelor"):
    return ids(board.order(queue_id, strategy, board.candidates(GROUPS, TZ)))


# --- strategies ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["ring_all", "fixed_order"])
def test_ring_all_and_fixed_order_ring_every_ready_operator_in_configuration_order(strategy):
    board = board_of("dana", "ana", "cvetan", "boris")
    board.set_paused("ana", True)
    assert ringing_order(board, strategy) == ["dana", "cvetan", "boris"]


@pytest.mark.parametrize("ended, expected", [
    pytest.param({"a": 300.0, "b": 100.0, "c": 200.0, "d": 400.0}, ["b", "c", "a", "d"], id="oldest-end-first"),
    pytest.param({"a": 300.0, "c": 200.0}, ["b", "d", "c", "a"], id="never-called-first-in-config-order"),
    pytest.param({"a": 5.0, "b": 5.0, "c": 1.0, "d": 5.0}, ["c", "a", "b", "d"], id="ties-in-config-order"),
])
def test_longest_idle_rings_whoever_finished_a_call_longest_ago(ended, expected):
    board = board_of("a", "b", "c", "d")
    for op_id, when in ended.items():
        board.operators[op_id].last_call_ended = when
    assert ringing_order(board, "longest_idle") == expected


@pytest.mark.parametrize("taken, expected", [
    pytest.param({"a": 3, "b": 1, "c": 2, "d": 0}, ["d", "b", "c", "a"], id="fewest-first"),
    pytest.param({"a": 2, "b": 1, "c": 2, "d": 1}, ["b", "d", "a", "c"], id="ties-in-config-order"),
])
def test_fewest_calls_rings_whoever_took_fewest_calls(taken, expected):
    board = board_of("a", "b", "c", "d")
    for op_id, count in taken.items():
        board.operators[op_id].calls_taken = count
    assert ringing_order(board, "fewest_calls") == expected


def test_released_calls_feed_longest_idle_and_fewest_calls():
    board = board_of("a", "b", "c")
    board.connected("a")
    board.released("a", talked=True)
    assert board.operators["a"].calls_taken == 1
    assert board.operators["a"].last_call_ended > 0
    assert ringing_order(board, "longest_idle") == ["b", "c", "a"]
    assert ringing_order(board, "fewest_calls") == ["b", "c", "a"]


@pytest.mark.parametrize("last, expected", [
    pytest.param(None, ["a", "b", "c", "d"], id="nothing-rung-yet"),
    pytest.param("a", ["b", "c", "d", "a"], id="after-first"),
    pytest.param("b", ["c", "d", "a", "b"], id="after-second"),
    pytest.param("d", ["a", "b", "c", "d"], id="wraps-after-last"),
    pytest.param("gone", ["a", "b", "c", "d"], id="unknown-operator"),
])
def test_round_robin_continues_after_the_one_rung_last(last, expected):
    board = board_of("a", "b", "c", "d")
    if last:
        board.remember("bachelor", last)
    assert ringing_order(board, "round_robin") == expected


def test_round_robin_skips_operators_who_cannot_take_a_call_but_keeps_its_place():
    board = board_of("a", "b", "c", "d")
    board.remember("bachelor", "b")
    board.set_paused("c", True)
    board.ringing("b")
    assert ringing_order(board, "round_robin") == ["d", "a"]


def test_round_robin_walks_through_everyone_and_wraps():
    board = board_of("a", "b", "c")
    rung = []
    for _ in range(7):
        first = ringing_order(board, "round_robin")[0]
        board.remember("bachelor", first)
        rung.append(first)
    assert rung == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_memory_is_per_queue():
    board = board_of("a", "b", "c", "d")
    board.remember("bachelor", "a")
    board.remember("master", "c")
    assert ringing_order(board, "round_robin", "bachelor") == ["b", "c", "d", "a"]
    assert ringing_order(board, "round_robin", "master") == ["d", "a", "b", "c"]
    assert ringing_order(board, "round_robin", "dormitories") == ["a", "b", "c", "d"]
    board.remember("bachelor", "b")
    assert ringing_order(board, "round_robin", "master") == ["d", "a", "b", "c"]


def test_round_robin_memory_survives_a_configuration_update():
    board = board_of("a", "b", "c")
    board.remember("bachelor", "a")
    board.update([dict(op.config) for op in board.operators.values()])
    assert ringing_order(board, "round_robin") == ["b", "c", "a"]


def test_random_is_reproducible_with_a_seeded_generator():
    names = ("a", "b", "c", "d", "e")
    first, second = board_of(*names, rng=random.Random(2026)), board_of(*names, rng=random.Random(2026))
    orders = [ringing_order(first, "random") for _ in range(20)]
    assert orders == [ringing_order(second, "random") for _ in range(20)]
    reference, expected = random.Random(2026), []
    for _ in range(20):
        shuffled = list(names)
        reference.shuffle(shuffled)
        expected.append(shuffled)
    assert orders == expected


def test_random_covers_every_candidate_and_leaves_the_input_alone():
    board = board_of("a", "b", "c", "d", rng=random.Random(7))
    candidates = board.candidates(GROUPS, TZ)
    firsts = set()
    for _ in range(200):
        order = ids(board.order("bachelor", "random", candidates))
        assert sorted(order) == ["a", "b", "c", "d"]
        firsts.add(order[0])
    assert firsts == {"a", "b", "c", "d"}
    assert ids(candidates) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("strategy", ["ring_all", "fixed_order", "round_robin", "longest_idle", "fewest_calls",
                                      "random"])
def test_every_strategy_rings_exactly_the_candidates(strategy):
    board = board_of("a", "b", "c", "d", rng=random.Random(1))
    board.connected("b")
    assert sorted(ringing_order(board, strategy)) == ["a", "c", "d"]
    assert board.order("bachelor", strategy, []) == []


# --- who is a candidate ---------------------------------------------------------------------------


def pause(board):
    board.set_paused("b", True)


def ring(board):
    board.ringing("b")


def connect(board):
    board.connected("b")


def wrap_up(board):
    board.operators["b"].wrap_up_until = time.monotonic() + 60


@pytest.mark.parametrize("extra, change, state", [
    pytest.param({}, pause, PAUSED, id="paused"),
    pytest.param({}, ring, RINGING, id="ringing"),
    pytest.param({}, connect, ON_CALL, id="on-call"),
    pytest.param({}, wrap_up, WRAP_UP, id="wrap-up"),
    pytest.param({"enabled": False}, None, OFFLINE, id="disabled"),
    pytest.param({"shift": shift_closed_today_by_exception}, None, OFFLINE, id="shift-closed-today"),
    pytest.param({"shift": shift_hours_excluding_now}, None, OFFLINE, id="shift-hours-exclude-now"),
    pytest.param({"shift": lambda: {"weekly": {}}}, None, OFFLINE, id="shift-never-open"),
    pytest.param({"enabled": False}, pause, OFFLINE, id="disabled-and-paused"),
])
def test_only_ready_operators_are_candidates(extra, change, state):
    extra = {key: value() if callable(value) else value for key, value in extra.items()}  # shifts built now
    board = make_board(("a", {}), ("b", extra), ("c", {}))
    if change:
        change(board)
    assert board.operators["b"].state(time.monotonic(), TZ) == state
    assert ids(board.candidates(GROUPS, TZ)) == ["a", "c"]
    assert {row["id"]: row["state"] for row in board.snapshot(TZ)}["b"] == state


@pytest.mark.parametrize("shift", [
    pytest.param(shift_all_week, id="all-week"),
    pytest.param(shift_open_today_only_by_exception, id="open-today-by-exception"),
])
def test_operator_on_shift_now_is_a_candidate(shift):
    board = make_board(("a", {}), ("b", {"shift": shift()}))
    assert board.operators["b"].state(time.monotonic(), TZ) == READY
    assert ids(board.candidates(GROUPS, TZ)) == ["a", "b"]


def test_candidates_are_limited_to_the_groups_and_the_exclusions():
    board = make_board(("a", {}), ("b", {"groups": ["admissions", "dorms"]}), ("c", {"groups": ["dorms"]}),
                       ("d", {}))
    assert ids(board.candidates(["dorms"], TZ)) == ["b", "c"]
    assert ids(board.candidates(["admissions"], TZ, exclude={"a"})) == ["b", "d"]
    assert ids(board.candidates(["nobody"], TZ)) == []


def test_ready_again_after_pause_and_after_wrap_up():
    board = board_of("a", "b")
    board.set_paused("a", True)
    board.set_paused("a", False)
    board.operators["b"].wrap_up_until = time.monotonic() - 1
    assert ids(board.candidates(GROUPS, TZ)) == ["a", "b"]


# --- a call's end ------------------------------------------------------------------------------------


def test_released_after_talking_starts_wrap_up_and_counts_the_call():
    board = make_board(("a", {"wrap_up_seconds": 30}), ("b", {}))
    board.ringing("a")
    board.connected("a")
    before = time.monotonic()
    board.released("a", talked=True)
    operator = board.operators["a"]
    assert operator.busy is None and operator.calls_taken == 1
    assert before <= operator.last_call_ended <= time.monotonic()
    assert operator.wrap_up_until == pytest.approx(operator.last_call_ended + 30)
    assert operator.state(time.monotonic(), TZ) == WRAP_UP
    assert ids(board.candidates(GROUPS, TZ)) == ["b"]
    assert 29 < board.next_wrap_up_end() <= 30
    operator.wrap_up_until = time.monotonic() - 0.001  # the wrap-up time has run out
    assert operator.state(time.monotonic(), TZ) == READY
    assert board.next_wrap_up_end() is None


def test_released_without_wrap_up_time_is_ready_at_once():
    board = board_of("a")
    board.connected("a")
    board.released("a", talked=True)
    assert board.operators["a"].calls_taken == 1
    assert ids(board.candidates(GROUPS, TZ)) == ["a"]


def test_released_without_talking_counts_nothing():
    board = make_board(("a", {"wrap_up_seconds": 30}))
    board.ringing("a")
    board.released("a", talked=False)
    operator = board.operators["a"]
    assert (operator.busy, operator.calls_taken, operator.last_call_ended) == (None, 0, 0.0)
    assert operator.state(time.monotonic(), TZ) == READY


def test_released_for_an_operator_no_longer_configured_is_ignored():
    board = board_of("a")
    board.released("gone", talked=True)
    assert board.operators["a"].calls_taken == 0


def test_live_state_survives_a_configuration_update():
    board = board_of("a", "b")
    board.connected("a")
    board.set_paused("b", True)
    configs = [dict(op.config) for op in board.operators.values()]
    configs[0]["name"] = "Ana Petrova"
    board.update(configs + [dict(configs[1], id="c", number="+359888000999")])
    states = {row["id"]: (row["name"], row["state"]) for row in board.snapshot(TZ)}
    assert states == {"a": ("Ana Petrova", ON_CALL), "b": ("B", PAUSED), "c": ("B", READY)}


# --- staffing ----------------------------------------------------------------------------------------


def test_staffed_counts_working_operators_of_the_groups():
    board = make_board(("ready", {}), ("ringing", {}), ("talking", {}), ("wrapping", {"wrap_up_seconds": 60}),
                       ("paused", {}), ("disabled", {"enabled": False}),
                       ("off_shift", {"shift": shift_closed_today_by_exception()}),
                       ("dorms_only", {"groups": ["dorms"]}))
    board.ringing("ringing")
    board.connected("talking")
    board.connected("wrapping")
    board.released("wrapping", talked=True)
    board.set_paused("paused", True)
    assert board.staffed(GROUPS, TZ) == 4
    assert board.staffed(["dorms"], TZ) == 1
    assert board.staffed(["admissions", "dorms"], TZ) == 5
    assert board.staffed(["nobody"], TZ) == 0


# --- operators' own phones ----------------------------------------------------------------------------


@pytest.mark.parametrize("configured, sender, found", [
    pytest.param("+359888123456", "+359888123456", True, id="same"),
    pytest.param("+359888123456", "0888123456", True, id="national-form"),
    pytest.param("+359888123456", "359888123456", True, id="without-plus"),
    pytest.param("+359888123456", "00359888123456", True, id="double-zero-prefix"),
    pytest.param("+359888123456", "+359 888 123 456", True, id="with-spaces"),
    pytest.param("0888123456", "+359888123456", True, id="configured-national"),
    pytest.param("+359888123456", "+359888123457", False, id="different-last-digit"),
    pytest.param("+359888123456", "+359887123456", False, id="different-middle-digit"),
    pytest.param("+359888123456", "123456", False, id="short-tail"),
    pytest.param("+359888123456", "", False, id="empty"),
    pytest.param("+359888123456", None, False, id="none"),
    pytest.param("+359888123456", "Vivacom", False, id="alphanumeric-sender"),
])
def test_by_number_matches_the_last_nine_digits(configured, sender, found):
    board = make_board(("other", {}), ("mine", {"number": configured}))
    operator = board.by_number(sender)
    assert (operator.id if operator else None) == ("mine" if found else None)


def test_by_number_tells_operators_apart():
    board = make_board(("a", {"number": "+359888123456"}), ("b", {"number": "+359888654321"}))
    assert board.by_number("0888654321").id == "b"
    assert board.by_number("0888123456").id == "a"


# --- SMS commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, command", [
    pytest.param("pause", "PAUSE", id="pause-lower"),
    pytest.param("PAUSE", "PAUSE", id="pause-upper"),
    pytest.param(" Ready ", "READY", id="ready-padded"),
    pytest.param("\nready\n", "READY", id="ready-newlines"),
    pytest.param("STATUS", "STATUS", id="status"),
    pytest.param("status please", "STATUS", id="status-first-word"),
    pytest.param("P", "PAUSE", id="p"),
    pytest.param("p", "PAUSE", id="p-lower"),
    pytest.param("R", "READY", id="r"),
    pytest.param("go", "READY", id="go"),
    pytest.param("S", "STATUS", id="s"),
    pytest.param("?", "STATUS", id="question-mark"),
    pytest.param("pauza", "PAUSE", id="pauza-transliterated"),
    pytest.param("\u0420\u0410USE", "PAUSE", id="cyrillic-er-a-pause"),
    pytest.param("\u0440\u0430use", "PAUSE", id="cyrillic-lower-er-a-pause"),
    pytest.param("\u0420", "PAUSE", id="cyrillic-er-alone"),
    pytest.param("R\u0415\u0410DY", "READY", id="cyrillic-ie-a-ready"),
    pytest.param("\u0405\u0422\u0410\u0422U\u0405", "STATUS", id="cyrillic-dze-te-a-status"),
])
def test_sms_command_is_recognised(text, command):
    assert parse_sms_command(text) == command


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param(None, id="none"),
    pytest.param("hello", id="greeting"),
    pytest.param("PAUSED", id="paused-past-tense"),
    pytest.param("READYY", id="typo"),
    pytest.param("12345", id="digits"),
    pytest.param("please pause", id="command-not-first"),
    pytest.param("\U0001F44D", id="emoji"),
])
def test_sms_garbage_is_no_command(text):
    assert parse_sms_command(text) is None
