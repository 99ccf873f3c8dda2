"""submit.network's deadline over real sockets: what it cuts, what it leaves alone, what it undoes."""

from __future__ import annotations

import time

import pytest
import requests
import requests.adapters

from submit.network import TIMEOUT_VAR, NoAnswer, bounded, timeout_s
from tests.submit.fakes import QuietHandler, never_answers, serve


class Answers(QuietHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def deadline(monkeypatch: pytest.MonkeyPatch) -> float:
    # Long enough that "failed at once" (well under it) never depends on how busy the machine is.
    monkeypatch.setenv(TIMEOUT_VAR, "2")
    return 2.0


def test_a_host_that_missed_the_deadline_is_not_waited_for_again(deadline: float) -> None:
    with never_answers() as port, serve(Answers) as good, bounded() as held:
        silent = f"http://127.0.0.1:{port}"
        start = time.monotonic()
        with pytest.raises(NoAnswer, match=f"no answer from {silent} within {deadline:g} s"):
            requests.get(f"{silent}/token")  # requests alone would wait forever
        assert time.monotonic() - start < 10 * deadline
        # No SDK retry waits again: the same host fails at once, whatever the path.
        start = time.monotonic()
        with pytest.raises(NoAnswer):
            requests.post(f"{silent}/other", timeout=300)
        assert time.monotonic() - start < deadline  # waiting again would take the deadline
        # Another host still gets its chance (a proxy that hangs only for one address).
        assert requests.get(good).status_code == 204
        assert list(held.missed) == [silent]


def test_a_callers_own_shorter_timeout_is_its_own_business(deadline: float) -> None:
    # As azure-identity's 1 s probe of the managed identity endpoint (imds.py:112), which sets
    # one of the pair and leaves the other to its client's configuration.
    silent = "http://127.0.0.1:{port}/"
    with never_answers() as port, serve(Answers) as good, bounded():
        for timeout in (0.1, (0.1, 0.1), (None, 0.1)):
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(silent.format(port=port), timeout=timeout)
        # None of those was the deadline's: nothing after them is cut short.
        assert requests.get(good, timeout=(0.1, None)).status_code == 204


def test_the_deadline_holds_only_inside_the_block(deadline: float) -> None:
    original = requests.adapters.HTTPAdapter.send
    with bounded():
        assert requests.adapters.HTTPAdapter.send is not original
        with bounded():  # nested calls share the outer deadline
            pass
        assert requests.adapters.HTTPAdapter.send is not original
    assert requests.adapters.HTTPAdapter.send is original


@pytest.mark.parametrize(("value", "seconds"), [("", 60.0), ("2", 2.0), (" 0.25 ", 0.25)])
def test_the_timeout_variable(value: str, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, value)
    assert timeout_s() == seconds
