"""Episode events: what the recorder writes on `recorder/events`, and how a bag is cut back
into episodes. ROS-free; shared by the recorder and the bag->dataset converter.

An event is a JSON object in a std_msgs/String:
    {"event": "start" | "success" | "stop" | "discard", "episode": <int>, "time_ns": <int>, ...}
An episode is the span from a start event to the next stop (kept) or discard (dropped);
a start followed by another start or by the end of the bag is "unfinished" (the recorder
was killed or restarted) and dropped too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Literal

EVENTS_TOPIC = "recorder/events"
EVENTS_TYPE = "std_msgs/msg/String"
EVENT_NAMES = ("start", "success", "stop", "discard")
Outcome = Literal["success", "failure", "discarded", "unfinished"]


class EventError(ValueError):
    """An event payload is not a recorder event."""


def encode_event(event: str, episode: int, time_ns: int, **extra: Any) -> str:
    if event not in EVENT_NAMES:
        raise EventError(f"unknown episode event {event!r}; known: {EVENT_NAMES}")
    return json.dumps({"event": event, "episode": int(episode), "time_ns": int(time_ns), **extra},
                      sort_keys=True)


def decode_event(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventError(f"episode event is not JSON: {text!r}") from exc
    if not isinstance(payload, dict) or payload.get("event") not in EVENT_NAMES \
            or not isinstance(payload.get("episode"), int):
        raise EventError(f"not an episode event: {text!r}")
    return payload


@dataclass(frozen=True)
class EpisodeSpan:
    episode: int
    start_ns: int          # bag log time of the start event
    stop_ns: int           # bag log time of the stop/discard event (end of bag if unfinished)
    outcome: Outcome
    info: dict[str, Any]   # extra fields of the start event (task, operator, ...)

    @property
    def kept(self) -> bool:
        return self.outcome in ("success", "failure")


def split_episodes(events: Iterable[tuple[int, dict[str, Any]]], bag_end_ns: int) -> list[EpisodeSpan]:
    """Episodes from (log_time_ns, decoded event) pairs in log-time order."""
    spans: list[EpisodeSpan] = []
    open_start: tuple[int, dict[str, Any]] | None = None
    success = False
    for log_time, event in events:
        kind = event["event"]
        if kind == "start":
            if open_start is not None:
                spans.append(_span(open_start, log_time, "unfinished"))
            open_start, success = (log_time, event), False
        elif open_start is None or event["episode"] != open_start[1]["episode"]:
            continue  # an event for an episode whose start is not in this bag
        elif kind == "success":
            success = True
        else:
            outcome: Outcome = "discarded" if kind == "discard" else ("success" if success else "failure")
            spans.append(_span(open_start, log_time, outcome))
            open_start = None
    if open_start is not None:
        spans.append(_span(open_start, bag_end_ns, "unfinished"))
    return spans


def _span(start: tuple[int, dict[str, Any]], stop_ns: int, outcome: Outcome) -> EpisodeSpan:
    log_time, event = start
    info = {k: v for k, v in event.items() if k not in ("event", "episode", "time_ns")}
    return EpisodeSpan(event["episode"], log_time, stop_ns, outcome, info)
