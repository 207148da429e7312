"""rosbag2 input and output through rosbags (pure Python; MCAP and sqlite3 storage): a typestore
that knows the project's messages, a reader that yields deserialised messages in log-time order
and reports a truncated or corrupt bag with how far it got, and a small writer.

The reader also skips connections whose message type is not what their topic is read as (a
`std_msgs/msg/String` on the LiDAR topic): the converters are duck-typed, so such a message would
otherwise fail deep inside them. `EXPECTED_TYPES` lists the types each kind of topic takes;
`bag_connections` reads a bag's topics and types from its index alone, so a caller can check them
before any work, and `type_problems` names the mismatches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BagError(RuntimeError):
    """A bag that cannot be read (entirely or from some point on); says which bag and why."""


STORAGES = ("mcap", "sqlite3")

# Kind of topic (monitor.ingest.Ingest.topics()) -> the message types it can be read as.
EXPECTED_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image"),
    "camera_info": ("sensor_msgs/msg/CameraInfo",),
    "points": ("sensor_msgs/msg/PointCloud2",),
    "tf": ("tf2_msgs/msg/TFMessage",),
}


@dataclass
class ReadStats:
    messages: int = 0
    undecodable: dict[str, int] = field(default_factory=dict)  # topic -> messages that failed to decode
    error: str = ""  # set when reading stopped early (truncated or corrupt storage)
    wrong_type: dict[str, set[str]] = field(default_factory=dict)  # topic -> unexpected types skipped


def _unreadable(path: Path, error: Exception) -> BagError:
    return BagError(f"{path}: not a readable rosbag2 ({type(error).__name__}: {error})")


def _recoverable_mcap(path: Path) -> list[Path]:
    """The MCAP files of a bag directory whose index rosbags cannot open (a recording that broke
    off leaves an MCAP file without its footer); empty when there is nothing to recover."""
    mcap_files = sorted(path.glob("*.mcap")) if path.is_dir() else []
    return mcap_files if mcap_files and (path / "metadata.yaml").exists() else []


def bag_connections(path: str | Path) -> dict[str, set[str]] | None:
    """topic -> the message types of its connections, from the bag's index, without reading any
    message. None for a bag whose index is unreadable but whose messages `read_messages` can still
    recover (a recording that broke off); BagError for anything that is not a readable rosbag2."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        with Reader(path) as reader:
            found: dict[str, set[str]] = {}
            for connection in reader.connections:
                found.setdefault(connection.topic, set()).add(connection.msgtype)
            return found
    except Exception as error:  # rosbags raises several types for unreadable metadata/storage
        if _recoverable_mcap(path):
            return None
        raise _unreadable(path, error) from None


def type_problems(found: Mapping[str, set[str]], kinds: Mapping[str, str]) -> list[tuple[str, str]]:
    """(topic, problem) for every topic of `kinds` (topic -> kind, as Ingest.topics()) that the bag
    (`found`, as bag_connections) holds with a message type its kind does not take."""
    problems = []
    for topic, kind in kinds.items():
        for msgtype in sorted(found.get(topic, set()) - set(EXPECTED_TYPES[kind])):
            problems.append((topic, _wrong_type_problem(msgtype, kind)))
    return problems


def _wrong_type_problem(msgtype: str, kind: str) -> str:
    expected = " or ".join(EXPECTED_TYPES[kind])
    return f"messages of type {msgtype} skipped: expected {expected} (the topic is read as {kind})"


def read_messages(
    path: str | Path,
    topics: Iterable[str] | None,
    typestore: Any,
    stats: ReadStats,
    kinds: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, str, int, Any]]:
    """(topic, msgtype, log time ns, message) for every message on `topics` (all when None), in log
    time order. With `kinds` (topic -> kind of topic, see EXPECTED_TYPES), messages of a type the
    topic's kind does not take are skipped and their types recorded in `stats.wrong_type`. A message
    that does not decode is counted in `stats.undecodable` and skipped; a storage error ends the
    iteration with `stats.error` set (the messages before it were yielded)."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags raises several types for unreadable metadata/storage
        mcap_files = _recoverable_mcap(path)
        if mcap_files:
            # rosbags needs the MCAP footer; read the records in order, as far as they go.
            stats.error = f"{type(error).__name__}: {error}"
            yield from _read_broken_mcap(mcap_files, topics, typestore, stats, kinds)
            return
        raise _unreadable(path, error) from None
    try:
        wanted = set(topics) if topics is not None else None
        connections = [
            c
            for c in reader.connections
            if (wanted is None or c.topic in wanted) and _expected(c.topic, c.msgtype, kinds, stats)
        ]
        iterator = reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, raw = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                stats.error = (
                    f"bag storage unreadable after {stats.messages} messages "
                    f"({type(error).__name__}: {error})"
                )
                return
            try:
                message = typestore.deserialize_cdr(raw, connection.msgtype)
            except Exception:
                stats.undecodable[connection.topic] = stats.undecodable.get(connection.topic, 0) + 1
                continue
            stats.messages += 1
            yield connection.topic, connection.msgtype, timestamp, message
    finally:
        try:
            reader.close()
        except Exception:
            pass


def _expected(topic: str, msgtype: str, kinds: Mapping[str, str] | None, stats: ReadStats) -> bool:
    """Whether `topic`'s kind takes `msgtype` (always without `kinds` or for a topic not in it);
    records an unexpected type in `stats.wrong_type`."""
    kind = kinds.get(topic) if kinds is not None else None
    if kind is None or msgtype in EXPECTED_TYPES[kind]:
        return True
    stats.wrong_type.setdefault(topic, set()).add(msgtype)
    return False


def _read_broken_mcap(
    files: list[Path],
    topics: Iterable[str] | None,
    typestore: Any,
    stats: ReadStats,
    kinds: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, str, int, Any]]:
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    wanted = set(topics) if topics is not None else None
    opening_error = stats.error
    for file in files:
        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, str]] = {}
        with open(file, "rb") as handle:
            records = StreamReader(handle, skip_magic=False, emit_chunks=False).records
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except Exception as error:
                    stats.error = (
                        f"{file.name} breaks off after {stats.messages} messages "
                        f"({type(error).__name__} {error}; the bag could not be opened: {opening_error})"
                    )
                    return
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
                elif isinstance(record, Message) and record.channel_id in channels:
                    topic, msgtype = channels[record.channel_id]
                    if wanted is not None and topic not in wanted:
                        continue
                    if not _expected(topic, msgtype, kinds, stats):
                        continue
                    try:
                        message = typestore.deserialize_cdr(record.data, msgtype)
                    except Exception:
                        stats.undecodable[topic] = stats.undecodable.get(topic, 0) + 1
                        continue
                    stats.messages += 1
                    yield topic, msgtype, record.log_time, message


def bag_topics(path: str | Path) -> dict[str, str]:
    """topic -> message type of a bag."""
    from rosbags.rosbag2 import Reader

    try:
        with Reader(Path(path)) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as error:
        raise _unreadable(Path(path), error) from None


class BagWriter:
    """Write messages to a new rosbag2 (MCAP by default) with one connection per topic."""

    def __init__(self, path: str | Path, typestore: Any, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = dict(zip(STORAGES, (StoragePlugin.MCAP, StoragePlugin.SQLITE3)))
        if storage not in plugins:
            raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
        path = Path(path)
        if path.exists():
            raise FileExistsError(
                f"{path} exists: rosbag2 writes a new directory; remove it or choose another --out"
            )
        self.typestore = typestore
        self.writer = Writer(path, version=9, storage_plugin=plugins[storage])
        self.connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self.writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def write(self, topic: str, msgtype: str, timestamp_ns: int, message: Any, latched: bool = False) -> None:
        connection = self.connections.get(topic)
        if connection is None:
            # /tf_static: transient local, so a late subscriber still gets it on replay
            qos = _latched_qos() if latched else ()
            connection = self.writer.add_connection(
                topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos
            )
            self.connections[topic] = connection
        self.writer.write(connection, int(timestamp_ns), self.typestore.serialize_cdr(message, msgtype))


def _latched_qos() -> tuple:
    from rosbags.rosbag2.metadata import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return (
        Qos(
            history=QosHistory.KEEP_LAST,
            depth=1,
            reliability=QosReliability.RELIABLE,
            durability=QosDurability.TRANSIENT_LOCAL,
            deadline=never,
            lifespan=never,
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=never,
            avoid_ros_namespace_conventions=False,
        ),
    )
