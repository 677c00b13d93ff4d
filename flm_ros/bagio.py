"""Reading bags for evaluation: rosbag2 (sqlite3, mcap) and ROS 1 through ``rosbags``.

Messages are decoded by rosbags with the bag's own type definitions into dataclasses that have the fields of the
rclpy messages, so the evaluation converts them with the same functions the node uses
(:mod:`flm_ros.conversions`; test_conversions checks both kinds of message give the same measurement).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rclpy.serialization import deserialize_message

from flm_ros.player import message_class


class BagError(RuntimeError):
    """A bag that cannot be read (missing, truncated, corrupt, unknown message types)."""


@dataclass
class BagInfo:
    path: Path
    topics: dict[str, str]                     # topic -> message type
    start: float                               # s
    end: float                                 # s
    count: int
    problems: list[str] = field(default_factory=list)


def open_bag(path: str | Path) -> Any:
    """An opened rosbags AnyReader; raises BagError with the reason."""
    from rosbags.highlevel import AnyReader, AnyReaderError  # noqa: PLC0415
    from rosbags.typesys import Stores, get_typestore  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag')
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except Exception as e:  # noqa: BLE001 (rosbags raises several types for corrupt files)
        raise BagError(f'{path}: cannot open bag: {type(e).__name__}: {e}{_hint(str(e))}') from None
    return reader


def _hint(err: str) -> str:
    """What a rosbags error most likely means, for the user."""
    low = err.lower()
    if 'end magic' in low or 'truncated record' in low:
        return (' (the file is truncated, e.g. the recording was interrupted: an mcap file without its footer cannot '
                'be read; re-record, or recover the readable part with `mcap recover`)')
    if 'disk image is malformed' in low or 'not a database' in low:
        return ' (the sqlite3 file is truncated or corrupt)'
    if 'seems to be empty' in low:
        return ' (the bag file is empty: nothing was recorded)'
    return ''


def info(reader: Any, path: Path) -> BagInfo:
    topics = {c.topic: c.msgtype for c in reader.connections}
    return BagInfo(path=path, topics=topics, start=reader.start_time * 1e-9, end=reader.end_time * 1e-9,
                   count=reader.message_count)


def messages(reader: Any, topics: list[str] | dict[str, tuple[str, ...]], problems: list[str],
             ros_objects: bool = False) -> Iterator[tuple[str, float, Any]]:
    """(topic, receive time s, message) in receive order.

    ``topics``: the topics to read, or topic -> the message types accepted on it ('sensor_msgs/msg/Imu', ...):
    a topic of another type is skipped with a note in ``problems`` (the message functions could not read it).
    Messages are deserialized by rosbags with the bag's own type definitions (rosbags dataclasses with the same
    field names as rclpy's messages, about 3x faster to decode); ``ros_objects``: rclpy message objects instead
    (to publish them). A message that cannot be decoded is skipped and counted in ``problems``; a read error
    (truncated or corrupt file) ends the iteration with a note."""
    accept = topics if isinstance(topics, dict) else {t: () for t in topics}
    conns = []
    for c in reader.connections:
        if c.topic not in accept:
            continue
        if accept[c.topic] and c.msgtype not in accept[c.topic]:
            problems.append(f'{c.topic}: message type {c.msgtype} is not one flm-eval reads there (expected '
                            f'{" or ".join(accept[c.topic])}); topic skipped')
        elif c.msgtype not in reader.typestore.fielddefs:
            problems.append(f'{c.topic}: message type {c.msgtype} is unknown (the bag has no definition of it); '
                            'topic skipped')
        elif ros_objects and message_class(c.msgtype) is None:
            problems.append(f'{c.topic}: message type {c.msgtype} is not installed; topic skipped')
        else:
            conns.append(c)
    it = reader.messages(connections=conns)
    undecodable = 0
    while True:
        try:
            conn, t_ns, raw = next(it)
        except StopIteration:
            break
        except Exception as e:  # noqa: BLE001 (truncated/corrupt data: keep what was read)
            problems.append(f'bag read error after some messages: {type(e).__name__}: {e} (partial results)')
            break
        try:
            if ros_objects:
                if not reader.is2:
                    raw = reader.typestore.serialize_cdr(reader.deserialize(raw, conn.msgtype), conn.msgtype)
                msg = deserialize_message(bytes(raw), message_class(conn.msgtype))
            else:
                msg = reader.deserialize(raw, conn.msgtype)
        except Exception:  # noqa: BLE001
            undecodable += 1
            continue
        yield conn.topic, t_ns * 1e-9, msg
    if undecodable:
        problems.append(f'{undecodable} messages could not be decoded and were skipped')


def write_slice(src: str | Path, dst: str | Path, duration: float, start: float = 0.0) -> int:
    """Copy the messages of bag ``src`` received in [start, start + duration] s after its first message into a new
    rosbag2 (mcap) ``dst``, byte for byte with the same topics and types (and every /tf_static message, wherever
    it is). Returns the number of messages written. A short real recording for tests and demos."""
    from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: PLC0415

    reader = open_bag(src)
    t0 = reader.start_time + int(start * 1e9)
    t1 = t0 + int(duration * 1e9)
    writer = Writer(Path(dst), version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    n = 0
    try:
        out = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=reader.typestore)
               for c in reader.connections}
        for conn, t_ns, raw in reader.messages():
            if t0 <= t_ns <= t1 or (conn.topic == '/tf_static' and t_ns <= t1):
                writer.write(out[conn.id], max(t_ns, t0), raw)
                n += 1
            elif t_ns > t1:
                break
    finally:
        writer.close()
        reader.close()
    return n
