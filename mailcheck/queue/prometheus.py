"""`--format prometheus`: the queue's numbers as a node-exporter textfile.

Every series is always present (all five queues, every reason class, zero when there is
nothing), so an empty queue is a 0 and never a missing series. A queue that could not be read
is `mailcheck_queue_up 0` with no other series: stale numbers must not look current.
Format: Prometheus text exposition format 0.0.4.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailcheck.queue.analysis import QueueObservation
from mailcheck.queue.reasons import ReasonClass

PREFIX = "mailcheck_queue"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(
    name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} gauge"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        shown = int(value) if float(value).is_integer() else value
        lines.append(
            f"{PREFIX}_{name}{{{label_text}}} {shown}" if labels else f"{PREFIX}_{name} {shown}"
        )
    return lines


def render_prometheus(obs: QueueObservation, config_dir: str = "") -> str:
    """The textfile for one successful read (label `config_dir` for a -c instance)."""
    base = {"config_dir": config_dir} if config_dir else {}
    queues = list(obs.queues.items())
    reason_counts = dict.fromkeys(ReasonClass, 0)
    for group in obs.reasons:
        reason_counts[group.reason_class] += group.recipients
    lines = [
        *_family("up", "1 if the queue was read.", [(base, 1)]),
        *_family(
            "messages",
            "Messages per queue.",
            [({**base, "queue": q.value}, s.messages) for q, s in queues],
        ),
        *_family(
            "recipients",
            "Pending recipients per queue.",
            [({**base, "queue": q.value}, s.recipients) for q, s in queues],
        ),
        *_family(
            "size_bytes",
            "Sum of message sizes per queue.",
            [({**base, "queue": q.value}, s.size_bytes) for q, s in queues],
        ),
        *_family(
            "oldest_seconds",
            "Age of the oldest message per queue (0 when empty).",
            [({**base, "queue": q.value}, s.oldest_seconds or 0) for q, s in queues],
        ),
        *_family(
            "forced_expire_messages",
            "Messages marked with postsuper -e per queue.",
            [({**base, "queue": q.value}, s.forced_expire) for q, s in queues],
        ),
        *_family(
            "reason_recipients",
            "Deferred recipients per reason class (selected queues).",
            [({**base, "class": c.value}, n) for c, n in reason_counts.items()],
        ),
        *_family("not_tried_recipients", "Recipients not tried yet.", [(base, obs.not_tried)]),
        *_family(
            "expiring_messages",
            "Messages reaching their queue lifetime within a day.",
            [(base, obs.expiring)],
        ),
        *_family(
            "skipped_lines",
            "Listing lines that were not queue entries.",
            [(base, obs.skipped_count)],
        ),
        *_family("timestamp_seconds", "When the ages were measured (epoch).", [(base, obs.now)]),
    ]
    return "\n".join(lines) + "\n"


def render_down(config_dir: str = "") -> str:
    """The textfile when the queue could not be read."""
    base = {"config_dir": config_dir} if config_dir else {}
    return "\n".join(_family("up", "1 if the queue was read.", [(base, 0)])) + "\n"
