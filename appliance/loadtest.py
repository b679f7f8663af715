"""Load test: many virtual callers ring the running box at once; the journal must hold each.

Callers come from the virtual twin (``twin.sock`` ``call`` requests, one thread per
caller at a time, at most ``concurrency`` at once), each with a number of its own
(``+3598990`` + a random run prefix + an index), spread over the given lines or every
virtual modem, each call on the line with the fewest of this run's callers on it. Then
the engine's journal (``calls`` on ``engine.sock``) is read until every caller number
has a finished call, or time is up. A caller who reaches a line in another call waits
(call waiting): the box must journal them, as a missed call with a call-back, or answer
them when the line frees. A caller the network turns away with busy (the line and its
waiting slot both taken) never reached the box; they redial after a pause, like people.
"""
import collections
import logging
import os
import queue
import random
import threading
import time

from .control import ControlClient
from .paths import ENGINE_SOCKET, TWIN_SOCKET
from .errors import ApplianceError, ControlError

log = logging.getLogger(__name__)

NUMBER_PREFIX = "+3598990"
ANSWER_TIMEOUT = 15.0  # how long the twin's caller lets a line ring (VirtualWorld.place_call)
JOURNAL_TIMEOUT = 30.0  # after the last caller hung up
POLL_SECONDS = 0.5
REDIALS = 200  # a caller who hears busy (every line and its waiting slot taken) dials again...
REDIAL_PAUSE = (1.0, 3.0)  # ...after a pause, as people do


def run(data_dir, calls, concurrency, lines=None, digits="", hold=3.0, journal_timeout=JOURNAL_TIMEOUT):
    """Place ``calls`` virtual calls, at most ``concurrency`` at once; return the summary."""
    _check(calls, concurrency, hold)
    engine = ControlClient(os.path.join(data_dir, ENGINE_SOCKET), timeout=10)
    engine.request("ping")  # no box, no test: fail before placing anything
    twin_path = os.path.join(data_dir, TWIN_SOCKET)
    lines = chosen_lines(twin_path, lines)
    numbers = caller_numbers(calls)
    started = time.monotonic()
    placer = CallPlacer(twin_path, lines, concurrency, digits, hold)
    results = placer.place(numbers)
    journaled = wait_for_journal(engine, numbers, journal_timeout)
    summary = summarize(results, journaled, placer.max_concurrent)
    summary.update(lines=lines, seconds=round(time.monotonic() - started, 1), redials=placer.redials)
    return summary


def _check(calls, concurrency, hold):
    if calls < 1:
        raise ControlError(f"--calls must be 1 or more, not {calls}")
    if concurrency < 1:
        raise ControlError(f"--concurrency must be 1 or more, not {concurrency}")
    if hold < 0:
        raise ControlError(f"--hold must not be negative, not {hold}")


def chosen_lines(twin_path, wanted=None):
    """The lines to call: ``wanted`` (each must be a virtual modem's), or every virtual modem's."""
    try:
        status = ControlClient(twin_path, timeout=10).request("status")
    except ApplianceError as err:
        raise ControlError(f"the virtual twin does not answer ({err}); "
                           "hotline loadtest calls virtual lines of a box started with 'hotline run'") from err
    available = [modem["line"] for modem in status["modems"]]
    if not wanted:
        if not available:
            raise ControlError("the virtual twin has no modems to call")
        return available
    unknown = [line for line in wanted if line not in available]
    if unknown:
        raise ControlError(f"no virtual modem for line(s) {', '.join(unknown)} "
                           f"(have: {', '.join(available) or 'none'})")
    return list(dict.fromkeys(wanted))


def caller_numbers(count, rng=random):
    """``count`` distinct caller numbers with a random run prefix, so runs do not mix in the journal."""
    run_prefix = rng.randrange(10, 100)
    width = max(3, len(str(count - 1)))
    return [f"{NUMBER_PREFIX}{run_prefix}{index:0{width}d}" for index in range(count)]


class CallPlacer:
    """Places calls through the twin from up to ``concurrency`` threads, each on the least busy line."""

    def __init__(self, twin_path, lines, concurrency, digits="", hold=3.0):
        self.twin = ControlClient(twin_path, timeout=hold + ANSWER_TIMEOUT + 30)
        self.concurrency = concurrency
        self.digits = digits
        self.hold = hold
        self.max_concurrent = 0
        self.redials = 0
        self._callers_on = {line: 0 for line in lines}
        self._active = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def place(self, numbers):
        """Place one call per number; return the twin's results in the order the calls ended."""
        work = queue.Queue()
        for number in numbers:
            work.put(number)
        results = []
        workers = [threading.Thread(target=self._work, args=(work, results), name=f"loadtest-{n}")
                   for n in range(min(self.concurrency, len(numbers)))]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        finally:
            self._stop.set()  # on Ctrl-C: no new calls; those in progress end with their hold
            for worker in workers:
                worker.join()
        return results

    def _work(self, work, results):
        while not self._stop.is_set():
            try:
                number = work.get_nowait()
            except queue.Empty:
                return
            results.append(self._place_one(number))

    def _place_one(self, number):
        """One caller: redials while the network says busy, as people do, then talks."""
        for attempt in range(REDIALS + 1):
            result = self._dial_once(number)
            if "busy" not in result.get("error", "") or self._stop.is_set():
                break
            self.redials += 1
            self._stop.wait(random.uniform(*REDIAL_PAUSE))
        return dict(result, redials=attempt)

    def _dial_once(self, number):
        line = self._take_line()
        try:
            return self.twin.request("call", line=line, hold=self.hold, digits=self.digits, **{"from": number})
        except ApplianceError as err:
            # The network refused the call (the line was busy) or the twin failed: the
            # call was still attempted, and the journal is what says whether the box saw it.
            log.info("call from %s on %s not placed: %s", number, line, err)
            return {"line": line, "from": number, "answered": False, "error": str(err)}
        finally:
            self._release_line(line)

    def _take_line(self):
        with self._lock:
            line = min(self._callers_on, key=self._callers_on.get)
            self._callers_on[line] += 1
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
        return line

    def _release_line(self, line):
        with self._lock:
            self._callers_on[line] -= 1
            self._active -= 1


def wait_for_journal(engine, numbers, timeout=JOURNAL_TIMEOUT):
    """The finished journal rows of ``numbers``' calls, by caller, once all are in or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    # Room for second rows (call waiting), operator legs and other calls meanwhile.
    last = 5 * len(numbers) + 50
    wanted = set(numbers)
    while True:
        rows = engine.request("calls", last=last)
        found = journaled_calls(rows, numbers)
        in_progress = any(row["caller"] in wanted and not row.get("ended_at") for row in rows)
        if (len(found) == len(numbers) and not in_progress) or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_SECONDS)


def journaled_calls(rows, numbers):
    """The last finished row of each of ``numbers``' calls, by caller, with ``rows``: how many it has.

    A caller who first waited on a busy line (journaled as missed) and was answered once
    the line freed has two rows; the last one is how their call ended.
    """
    wanted = set(numbers)
    found = {}
    for row in sorted(rows, key=lambda row: row["id"]):
        if row.get("caller") in wanted and row.get("ended_at"):
            earlier = found.get(row["caller"], {}).get("rows", 0)
            found[row["caller"]] = dict(row, rows=earlier + 1)
    return found


def summarize(results, journaled, max_concurrent):
    """Counts a reader can check: placed, answered, journaled, outcomes, unaccounted, concurrency."""
    numbers = [result["from"] for result in results]
    missing = sorted(number for number in numbers if number not in journaled)
    outcomes = collections.Counter(row["outcome"] or "unknown" for row in journaled.values())
    return {
        "placed": len(results),
        "answered": sum(1 for result in results if result.get("answered")),
        "refused": sum(1 for result in results if "error" in result),
        "journaled": len(journaled),
        "journaled_twice": sum(1 for row in journaled.values() if row.get("rows", 1) > 1),
        "outcomes": dict(sorted(outcomes.items())),
        "unaccounted": len(missing),
        "unaccounted_callers": missing,
        "max_concurrent": max_concurrent,
        "max_concurrent_in_journal": max_overlap(journaled.values()),
    }


def max_overlap(rows):
    """The most journaled calls that were in progress at the same moment."""
    edges = sorted([(row["started_at"], 1) for row in rows] + [(row["ended_at"], -1) for row in rows],
                   key=lambda edge: (edge[0], edge[1]))  # an end before a start at the same instant
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def report(summary):
    """The summary as lines of text for a terminal."""
    lines = [f"lines: {', '.join(summary['lines'])}   time: {summary['seconds']} s",
             f"placed: {summary['placed']}   answered by the box: {summary['answered']}   "
             f"redials after busy: {summary.get('redials', 0)}   refused in the end: {summary['refused']}",
             f"journaled: {summary['journaled']}   not accounted for: {summary['unaccounted']}   "
             f"missed on a busy line first, then answered: {summary['journaled_twice']}",
             f"max concurrent: {summary['max_concurrent']} callers, "
             f"{summary['max_concurrent_in_journal']} calls in the journal"]
    lines += [f"  {outcome:<14} {count}" for outcome, count in summary["outcomes"].items()]
    if summary["unaccounted_callers"]:
        lines.append("not in the journal: " + ", ".join(summary["unaccounted_callers"]))
    return "\n".join(lines)
