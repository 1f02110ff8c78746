"""``kafka://host:port[,host2:port]/topic[,topic2]``: one string names a stream."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from alertbutler.subscribe.errors import StreamURLError

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
#: Kafka's own rule for topic names.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True, kw_only=True)
class StreamURL:
    """Where a stream is: bootstrap brokers and the topics read together."""

    brokers: tuple[str, ...]
    topics: tuple[str, ...]

    @property
    def bootstrap(self) -> str:
        return ",".join(self.brokers)

    def __str__(self) -> str:
        return f"kafka://{self.bootstrap}/{','.join(self.topics)}"

    @classmethod
    def parse(cls, url: str) -> StreamURL:
        """Parse and check a URL; every error names the offending part."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() != "kafka":
            raise StreamURLError(f"{url!r}: expected kafka://host:port[,host:port]/topic[,topic]")
        netloc, slash, path = rest.partition("/")
        if "@" in netloc:
            raise StreamURLError("credentials do not belong in the URL: set kafka.client "
                                 "sasl.username / sasl.password in the configuration")
        brokers = tuple(part.strip() for part in netloc.split(",") if part.strip())
        if not brokers:
            raise StreamURLError(f"{url!r}: no broker address before the topic")
        for broker in brokers:
            match = _HOST.match(broker)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise StreamURLError(f"{url!r}: broker {broker!r} is not host:port")
        path = unquote(path.split("?", 1)[0]).strip("/")
        if not slash or not path:
            raise StreamURLError(f"{url!r}: no topic after the broker list")
        topics = tuple(t.strip() for t in path.split(",") if t.strip())
        for topic in topics:
            if not _TOPIC.match(topic):
                raise StreamURLError(f"{url!r}: {topic!r} is not a valid Kafka topic name")
        if len(set(topics)) != len(topics):
            raise StreamURLError(f"{url!r}: a topic is named twice")
        return cls(brokers=brokers, topics=topics)
