"""``RemoteReranker.shared``: one client per set of options, dict and list options included."""

from __future__ import annotations

from typing import Any

from lychee_integrations import RemoteReranker

URL = "http://127.0.0.1:9/shared-test"  # nothing is sent: the URL only keys the process-wide cache


def hook(request: Any) -> None:
    """An httpx event hook that does nothing."""


def test_dict_and_list_options_are_compared_by_value() -> None:
    first = RemoteReranker.shared(URL, headers={"X-Team": "search", "X-Env": "prod"}, timeout=5)
    again = RemoteReranker.shared(URL, timeout=5, headers={"X-Env": "prod", "X-Team": "search"})
    assert again is first
    assert RemoteReranker.shared(URL, headers={"X-Team": "ads", "X-Env": "prod"}, timeout=5) is not first
    assert RemoteReranker.shared(URL, headers={"X-Team": "search", "X-Env": "prod"}) is not first
    hooked = RemoteReranker.shared([URL, "http://127.0.0.1:10"], event_hooks={"request": [hook]})
    assert RemoteReranker.shared([URL, "http://127.0.0.1:10"], event_hooks={"request": [hook]}) is hooked
    assert RemoteReranker.shared(URL, event_hooks={"request": [hook]}) is not hooked
    assert RemoteReranker.shared(URL) is RemoteReranker.shared(URL)


def test_an_unhashable_option_value_is_shared_by_identity() -> None:
    class Policy:
        __hash__ = None  # type: ignore[assignment]

    value = Policy()
    registry_like: Any = value
    first = RemoteReranker.shared(URL, registry=registry_like, max_retries=1)
    assert RemoteReranker.shared(URL, registry=registry_like, max_retries=1) is first
    assert RemoteReranker.shared(URL, registry=Policy(), max_retries=1) is not first
