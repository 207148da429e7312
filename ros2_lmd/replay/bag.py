"""rosbag2 input and output through rosbags (pure Python; MCAP and sqlite3 storage): a typestore
that knows the project's messages, a reader that yields deserialised messages in log-time order
and reports a truncated or corrupt bag with how far it got, and a small writer.

The reader also skips connections whose message type is not what their topic is read as (a
`std_msgs/msg/String` on the LiDAR topic): the converters are duck-typed, so such a message would
otherwise fail deep inside them. `EXPECTED_TYPES` lists the types each kind of topic takes;
`bag_connections` reads a bag's topics and types from its index alone, so a caller can check them
before any work, and `type_problems` names the mismatches."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ros2_lmd.errors import LMDError


class BagError(LMDError, RuntimeError):
    """A bag that cannot be read (entirely or from some point on); says which bag and why."""


STORAGES = ("mcap", "sqlite3")
STORAGE_SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}


def bag_dir(path: str | Path) -> Path:
    """The rosbag2 directory to write for a user's `--out`: rosbag2 names the folder after the bag
    (`drive/`) and the storage file inside it `drive_0.mcap`, so a storage suffix given on the folder
    (`drive.mcap`) is dropped; otherwise Foxglove users would find `drive.mcap/drive.mcap.mcap`."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in STORAGE_SUFFIXES.values() else path


def check_replaceable(out: Path, force: bool) -> None:
    """An existing `out` is replaced only with `force`, and only if it is a rosbag2 directory."""
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise FileExistsError(
            f"{out} exists: rosbag2 writes a new directory; remove it or choose another --out"
        )
    if out.is_symlink() or not out.is_dir() or not (out / "metadata.yaml").is_file():
        raise FileExistsError(
            f"{out} exists and is not a rosbag2 directory (no metadata.yaml): not replacing it"
        )


def resolve_bag(path: str | Path) -> Path:
    """The rosbag2 directory for a path a user gives to read: the directory itself, or one of the
    storage files inside it (`drive/drive_0.mcap`, what Foxglove and file browsers show)."""
    path = Path(path)
    if (
        path.is_file()
        and path.suffix in STORAGE_SUFFIXES.values()
        and (path.parent / "metadata.yaml").is_file()
    ):
        return path.parent
    return path


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
    # set when metadata.yaml could not be read and the messages came from the MCAP files directly
    metadata_problem: str = ""


def _unreadable(path: Path, error: Exception) -> BagError:
    problem = metadata_problem(path)
    if problem:
        return BagError(f"{path}: not a readable rosbag2: {problem}")
    return BagError(f"{path}: not a readable rosbag2 ({type(error).__name__}: {error})")


def metadata_problem(path: Path) -> str:
    """What is wrong with a bag directory's metadata.yaml (rosbags reports an empty one as
    "'NoneType' object is not subscriptable"), or "" when it reads as a rosbag2's."""
    import yaml

    meta = path / "metadata.yaml"
    if not path.is_dir():
        return ""
    if not meta.is_file():
        return f"{meta} is missing"
    try:
        document = yaml.safe_load(meta.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        return f"{meta} is not readable YAML ({type(error).__name__}: {' '.join(str(error).split())})"
    if document is None:
        return f"{meta} is empty"
    if not isinstance(document, dict) or not isinstance(document.get("rosbag2_bagfile_information"), dict):
        return f"{meta} has no rosbag2_bagfile_information mapping"
    return ""


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

    path = resolve_bag(path)
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

    path = resolve_bag(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags raises several types for unreadable metadata/storage
        mcap_files = _recoverable_mcap(path)
        problem = metadata_problem(path)
        if mcap_files and problem:
            # the index is fine, metadata.yaml is not: every message is still in the MCAP files
            stats.metadata_problem = f"{problem}: the messages were read from the MCAP files directly"
            yield from _read_broken_mcap(mcap_files, topics, typestore, stats, kinds)
            return
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
    opening_error = stats.error or stats.metadata_problem
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
        with Reader(resolve_bag(path)) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as error:
        raise _unreadable(Path(path), error) from None


@dataclass
class TopicInfo:
    topic: str
    msgtype: str
    count: int
    serialization: str = "cdr"


@dataclass
class BagInfo:
    """What `ros2 bag info` shows of a bag (`bag_info`)."""

    path: Path
    files: list[str]
    size_bytes: int
    storage: str
    ros_distro: str
    start_ns: int
    end_ns: int
    messages: int
    topics: list[TopicInfo]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9 if self.messages else 0.0

    def describe(self) -> str:
        """The bag as `ros2 bag info` prints it."""

        def stamp(ns: int) -> str:
            from datetime import datetime, timezone

            moment = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc)
            return f"{moment:%b %d %Y %H:%M:%S}.{ns % 10**9 // 10**6:03d} UTC ({ns * 1e-9:.9f})"

        width = max((len(t.topic) for t in self.topics), default=0)
        type_width = max((len(t.msgtype) for t in self.topics), default=0)
        lines = [
            f"Files:             {', '.join(self.files)}",
            f"Bag size:          {_human_size(self.size_bytes)}",
            f"Storage id:        {self.storage}",
            f"ROS Distro:        {self.ros_distro}",
            f"Duration:          {self.duration_s:.9f}s",
            f"Start:             {stamp(self.start_ns) if self.messages else '-'}",
            f"End:               {stamp(self.end_ns) if self.messages else '-'}",
            f"Messages:          {self.messages}",
            f"Topic information: {len(self.topics)} topics",
        ]
        lines += [
            f"  Topic: {t.topic:<{width}} | Type: {t.msgtype:<{type_width}} | Count: {t.count:>6} | "
            f"Serialization Format: {t.serialization}"
            for t in self.topics
        ]
        return "\n".join(lines)


def _human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
    return f"{size:.1f} GiB"


def bag_info(path: str | Path) -> BagInfo:
    """Topics, types, message counts, time span, files and storage of a rosbag2 (directory or one
    of its storage files), from its index: `ros2-lmd info`, where `ros2 bag info` is not installed.
    BagError for anything that is not a readable rosbag2."""
    import yaml
    from rosbags.rosbag2 import Reader

    bag = resolve_bag(path)
    if not bag.exists():
        raise BagError(f"{bag}: no such bag")
    try:
        with Reader(bag) as reader:
            counts: dict[tuple[str, str], int] = {}
            for connection in reader.connections:
                key = (connection.topic, connection.msgtype)
                counts[key] = counts.get(key, 0) + connection.msgcount
            start, end, messages = reader.start_time, reader.end_time, reader.message_count
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    except Exception as error:
        raise _unreadable(bag, error) from None
    files = list(info.get("relative_file_paths", []))
    return BagInfo(
        path=bag,
        files=files,
        size_bytes=sum((bag / name).stat().st_size for name in files if (bag / name).is_file()),
        storage=str(info.get("storage_identifier", "")),
        ros_distro=str(info.get("ros_distro", "")),
        start_ns=int(start) if messages else 0,
        # rosbags' end_time is one past the last message's time; ros2 bag info shows the last
        end_ns=int(end) - 1 if messages else 0,
        messages=int(messages),
        topics=[TopicInfo(topic, msgtype, count) for (topic, msgtype), count in sorted(counts.items())],
    )


def message_count(path: str | Path, topics: Iterable[str]) -> int | None:
    """How many messages of `topics` the bag's index lists (a progress bar's total); None where the
    index cannot be read (a recording that broke off)."""
    wanted = set(topics)
    try:
        return sum(t.count for t in bag_info(path).topics if t.topic in wanted)
    except BagError:
        return None


MCAP_CHUNK_BYTES = 4 * 2**20  # larger chunks compress better; 4 MiB is a few frames of pictures
# Bags that stand for recordings (simulate, corrupt, nuscenes2bag): rosbag2's own default chunk size,
# so that a recording that breaks off keeps every chunk completed before the break (read_messages
# recovers them), as one from `ros2 bag record` does.
RECORDING_CHUNK_BYTES = 768 * 2**10


class BagWriter:
    """Write messages to a new rosbag2 (MCAP by default) with one connection per topic. MCAP is
    written in zstd-compressed chunks with CRCs (`ChunkedMcap`): the project's output bags are
    mostly BEV pictures, which compress several times over, and a flipped byte is found on reading."""

    def __init__(
        self, path: str | Path, typestore: Any, storage: str = "mcap", chunk_bytes: int = MCAP_CHUNK_BYTES
    ) -> None:
        """`chunk_bytes`: MCAP chunk size (RECORDING_CHUNK_BYTES for bags that stand for recordings)."""
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
        # an instance attribute: rosbags' own MCAP storage writes chunks without CRCs
        mcap = functools.partial(ChunkedMcap, chunk_bytes=chunk_bytes)
        self.writer.STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: mcap}
        self.connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self.writer.open()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:  # closing would write again (after a full disk: fail again)
            self.writer.abort()
            return
        try:
            self.writer.close()
        except BaseException:
            self.writer.abort()  # the file is closed, not left open on a full disk
            raise
        _rename_storage_files(self.writer.path)

    def write(self, topic: str, msgtype: str, timestamp_ns: int, message: Any, latched: bool = False) -> None:
        # /tf_static: transient local, so a late subscriber still gets it on replay
        raw = self.typestore.serialize_cdr(message, msgtype)
        self.write_raw(topic, msgtype, timestamp_ns, raw, _latched_qos() if latched else ())

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, raw: bytes, qos: tuple = ()) -> None:
        """Write an already serialised (CDR) message, e.g. copied byte for byte from another bag
        with its connection's QoS profiles."""
        connection = self.connections.get(topic)
        if connection is None:
            connection = self.writer.add_connection(
                topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos
            )
            self.connections[topic] = connection
        self.writer.write(connection, int(timestamp_ns), raw)


class ChunkedMcap:
    """rosbags' storage-writer interface (rosbags.rosbag2.writer.StorageWriter) over the `mcap`
    package's writer: zstd chunk compression, chunk and summary CRCs, message indexes. The file is
    named as rosbag2 names it (`<bag>/<bag>_0.mcap`)."""

    def __init__(self, path: Path, compression: Any, chunk_bytes: int = MCAP_CHUNK_BYTES) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = path / f"{path.name}_0.mcap"
        self.stream = self.path.open("xb")
        self.mcap = Writer(
            self.stream, chunk_size=chunk_bytes, compression=CompressionType.ZSTD, enable_crcs=True
        )
        self.mcap.start(profile="ros2", library="ros2_lmd")
        self.schemas: dict[str, int] = {}
        self.channels: dict[int, int] = {}  # rosbags connection id -> MCAP channel id

    def add_msgtype(self, connection: Any) -> None:
        from rosbags.interfaces import MessageDefinitionFormat

        encoding = "ros2msg" if connection.msgdef.format == MessageDefinitionFormat.MSG else "ros2idl"
        self.schemas[connection.msgtype] = self.mcap.register_schema(
            connection.msgtype, encoding, connection.msgdef.data.encode()
        )

    def add_connection(self, connection: Any, offered_qos_profiles: str) -> None:
        self.channels[connection.id] = self.mcap.register_channel(
            connection.topic,
            connection.ext.serialization_format,
            self.schemas[connection.msgtype],
            {"offered_qos_profiles": offered_qos_profiles},
        )

    def write(self, connection: Any, timestamp: int, data: bytes | memoryview) -> None:
        self.mcap.add_message(self.channels[connection.id], timestamp, bytes(data), timestamp)

    def close(self, version: int, metadata: str) -> None:
        self.mcap.add_metadata("rosbag2", {"serialized_metadata": metadata})
        self.mcap.finish()
        self.stream.close()

    def abort(self) -> None:
        try:
            self.stream.close()
        except OSError:  # flushing what is buffered fails again on a full disk
            pass


def _rename_storage_files(bag: Path) -> None:
    """rosbags writes `<bag>/<bag>.mcap`; rosbag2 (ros2 bag record) writes `<bag>/<bag>_0.mcap`.
    Renamed here, with metadata.yaml's file lists, so bags look as ROS users know them."""
    import yaml

    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    renamed = {}
    for name in info.get("relative_file_paths", []):
        source = Path(name)
        target = f"{bag.name}_0{source.suffix}" if source.stem == bag.name else name
        if target != name:
            (bag / name).rename(bag / target)
            renamed[name] = target
    info["relative_file_paths"] = [renamed.get(n, n) for n in info.get("relative_file_paths", [])]
    for entry in info.get("files", []):
        entry["path"] = renamed.get(entry["path"], entry["path"])
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))


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
