"""Static transform tree (extrinsics) from tf2_msgs/TFMessage (/tf_static) or a config mapping.
`lookup(target, source)` returns T_target_source (maps points in `source` to `target`), composed
through the tree in either direction. Quaternions go through scipy's Rotation, never by hand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

from ros2_lmd.sensors.errors import SensorDataError, TransformLookupError

# A quaternion this far from unit norm is a bug upstream, not rounding; scipy would normalise it.
_MIN_QUATERNION_NORM = 1e-6


def quaternion_to_matrix(xyzw: Sequence[float], topic: str, where: str = "rotation") -> np.ndarray:
    """3x3 rotation of a quaternion (x, y, z, w), normalised; zero or non-finite ones are refused."""
    q = np.asarray(xyzw, dtype=np.float64).reshape(-1)
    if q.size != 4 or not np.isfinite(q).all():
        raise SensorDataError(topic, f"{where}: expected 4 finite numbers (x, y, z, w), got {q.tolist()}")
    if np.linalg.norm(q) < _MIN_QUATERNION_NORM:
        raise SensorDataError(topic, f"{where}: zero quaternion {q.tolist()}")
    return Rotation.from_quat(q / np.linalg.norm(q)).as_matrix()


def rigid_transform(rotation: np.ndarray, translation: ArrayLike) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (R^T, -R^T t), exact for orthonormal R."""
    R, t = T[:3, :3], T[:3, 3]
    inverse = np.eye(4)
    inverse[:3, :3] = R.T
    inverse[:3, 3] = -R.T @ t
    return inverse


class TransformTree:
    """Frames linked parent -> child by fixed transforms T_parent_child. A child has one parent; a
    new transform for a child replaces the old one (as tf2 does), and one that closes a loop is
    refused. Static only: /tf_static extrinsics, no time interpolation."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._T_parent_child: dict[str, np.ndarray] = {}

    @property
    def frames(self) -> frozenset[str]:
        return frozenset(self._parent) | frozenset(self._parent.values())

    def __contains__(self, frame: object) -> bool:
        return frame in self.frames

    def add_transform(
        self, parent: str, child: str, T_parent_child: np.ndarray, topic: str = "extrinsics"
    ) -> None:
        """Record the pose of `child` in `parent` (maps child coordinates to parent coordinates)."""
        if not parent or not child:
            raise SensorDataError(topic, f"frame ids must be non-empty (parent {parent!r}, child {child!r})")
        if parent == child:
            raise SensorDataError(topic, f"transform from frame {child!r} to itself")
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise SensorDataError(topic, f"{parent}<-{child}: expected a finite 4x4 transform")
        # Walking up from the new parent must not reach the child, or lookups would never end.
        frame = parent
        while frame in self._parent:
            frame = self._parent[frame]
            if frame == child:
                raise SensorDataError(topic, f"{parent}<-{child}: would close a loop of transforms")
        self._parent[child] = parent
        self._T_parent_child[child] = T.copy()

    def add_tf_message(self, msg: Any, topic: str = "/tf_static") -> None:
        """Add every TransformStamped of a tf2_msgs/TFMessage. All values are checked before any is
        added, so a malformed entry (zero quaternion, NaN) leaves the tree unchanged."""
        entries = []
        for i, stamped in enumerate(msg.transforms):
            parent = str(stamped.header.frame_id).lstrip("/")  # tf2 ignores a leading slash
            child = str(stamped.child_frame_id).lstrip("/")
            where = f"transforms[{i}] ({parent}<-{child})"
            translation = stamped.transform.translation
            rotation = stamped.transform.rotation
            t = np.array([translation.x, translation.y, translation.z], dtype=np.float64)
            if not np.isfinite(t).all():
                raise SensorDataError(topic, f"{where}.translation: non-finite {t.tolist()}")
            R = quaternion_to_matrix(
                (rotation.x, rotation.y, rotation.z, rotation.w), topic, f"{where}.rotation"
            )
            entries.append((parent, child, rigid_transform(R, t), where))
        for parent, child, T, where in entries:
            self.add_transform(parent, child, T, f"{topic} {where}")

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Mapping[str, Any]],
        base_frame: str = "base_link",
        source: str = "extrinsics",
    ) -> TransformTree:
        """Tree from `{child_frame: {parent: base_link, xyz: [x, y, z], rpy: [r, p, y]}}`.
        `translation` is accepted for xyz, and `quaternion` or `rotation` ([qx, qy, qz, qw], the
        extrinsics_file format of config/monitor.yaml) for rpy; `parent` defaults to base_frame.
        rpy is URDF's: fixed axes, roll about x, then pitch about y, then yaw about z."""
        tree = cls()
        for child, entry in config.items():
            where = repr(child)
            if not isinstance(entry, Mapping):
                raise SensorDataError(source, f"{child!r}: expected a mapping, got {type(entry).__name__}")
            unknown = set(entry) - {"parent", "xyz", "translation", "rpy", "quaternion", "rotation"}
            if unknown:
                raise SensorDataError(source, f"{child!r}: unknown keys {sorted(unknown)}")
            xyz = _one_of(entry, ("xyz", "translation"), where, source, default=(0.0, 0.0, 0.0))
            t = np.asarray(xyz, dtype=np.float64).reshape(-1)
            if t.size != 3 or not np.isfinite(t).all():
                raise SensorDataError(source, f"{child!r}.xyz: expected 3 finite numbers, got {xyz}")
            rotation_keys = [k for k in ("rpy", "quaternion", "rotation") if k in entry]
            if len(rotation_keys) > 1:
                raise SensorDataError(
                    source, f"{child!r}: give one of rpy/quaternion/rotation, got {rotation_keys}"
                )
            if rotation_keys == ["rpy"]:
                rpy = np.asarray(entry["rpy"], dtype=np.float64).reshape(-1)
                if rpy.size != 3 or not np.isfinite(rpy).all():
                    raise SensorDataError(
                        source, f"{child!r}.rpy: expected 3 finite angles, got {entry['rpy']}"
                    )
                R = Rotation.from_euler("xyz", rpy).as_matrix()  # lower case: extrinsic (fixed) axes
            elif rotation_keys:
                R = quaternion_to_matrix(entry[rotation_keys[0]], source, f"{child!r}.{rotation_keys[0]}")
            else:
                R = np.eye(3)
            parent = str(entry.get("parent", base_frame))
            tree.add_transform(parent, str(child), rigid_transform(R, t), source)
        return tree

    @classmethod
    def from_matrices(cls, poses: Mapping[str, np.ndarray], parent: str = "base_link") -> TransformTree:
        """Tree with each frame of `poses` ({frame: T_parent_frame}) directly under `parent`."""
        tree = cls()
        for child, T in poses.items():
            tree.add_transform(parent, child, T)
        return tree

    def _chain_to_root(self, frame: str) -> tuple[list[str], np.ndarray]:
        """Frames from `frame` up to its root, and T_root_frame."""
        chain = [frame]
        T_root_frame = np.eye(4)
        while chain[-1] in self._parent:
            child = chain[-1]
            T_root_frame = self._T_parent_child[child] @ T_root_frame
            chain.append(self._parent[child])
        return chain, T_root_frame

    def lookup(self, target_frame: str, source_frame: str) -> np.ndarray:
        """T_target_source: maps points in `source_frame` to `target_frame`."""
        if target_frame == source_frame:
            return np.eye(4)
        known = self.frames
        for frame in (target_frame, source_frame):
            if frame not in known:
                raise TransformLookupError(target_frame, source_frame, known, f"frame {frame!r} is unknown")
        # Both frames hang from roots; they connect only through a common root (the tree is a forest).
        target_chain, T_root_target = self._chain_to_root(target_frame)
        source_chain, T_root_source = self._chain_to_root(source_frame)
        if target_chain[-1] != source_chain[-1]:
            raise TransformLookupError(
                target_frame,
                source_frame,
                known,
                f"they lie in separate trees (roots {target_chain[-1]!r} and {source_chain[-1]!r})",
            )
        return invert_rigid(T_root_target) @ T_root_source


def _one_of(entry: Mapping[str, Any], keys: Iterable[str], where: str, source: str, default: Any) -> Any:
    present = [k for k in keys if k in entry]
    if len(present) > 1:
        raise SensorDataError(source, f"{where}: give one of {present}, not both")
    return entry[present[0]] if present else default


def transform_points(
    points: np.ndarray, T_target_source: np.ndarray, vector_columns: Sequence[tuple[int, int]] = ()
) -> np.ndarray:
    """Points (N, >=3; columns 0..2 are x, y, z) from the source frame to the target frame.
    Each (i, j) in `vector_columns` is a planar vector (e.g. radar vx_comp, vy_comp): it is rotated,
    not translated, as (vx, vy, 0) and keeps its x, y components. Other columns are copied."""
    points = np.asarray(points)
    out = np.array(points, dtype=np.float32, copy=True)
    if out.shape[0] == 0:
        return out
    R = T_target_source[:3, :3]
    t = T_target_source[:3, 3]
    out[:, :3] = points[:, :3].astype(np.float64) @ R.T + t
    for i, j in vector_columns:
        planar = np.zeros((points.shape[0], 3))
        planar[:, 0] = points[:, i]
        planar[:, 1] = points[:, j]
        rotated = planar @ R.T
        out[:, i] = rotated[:, 0]
        out[:, j] = rotated[:, 1]
    return out


def transform_stamped_fields(parent: str, child: str, T: np.ndarray) -> dict[str, Any]:
    """Plain values of a geometry_msgs/TransformStamped (less stamp) for T_parent_child:
    frame_id, child_frame_id, translation (x, y, z), rotation (x, y, z, w)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ValueError(f"transform_stamped_fields({parent}<-{child}): expected a finite 4x4")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError(f"transform_stamped_fields({parent}<-{child}): rotation is not orthonormal")
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return {
        "frame_id": parent,
        "child_frame_id": child,
        "translation": (float(T[0, 3]), float(T[1, 3]), float(T[2, 3])),
        "rotation": (float(x), float(y), float(z), float(w)),
    }


def make_tf_message(types: Any, header_stamp: Any, transforms: Iterable[tuple[str, str, np.ndarray]]) -> Any:
    """tf2_msgs/TFMessage of (parent, child, T_parent_child) entries, all stamped `header_stamp`
    (a builtin_interfaces/Time), built with `types` (ros2_lmd.messages.types)."""
    stamped = []
    for parent, child, T in transforms:
        f = transform_stamped_fields(parent, child, T)
        tx, ty, tz = f["translation"]
        qx, qy, qz, qw = f["rotation"]
        stamped.append(
            types.new(
                "geometry_msgs/msg/TransformStamped",
                header=types.new("std_msgs/msg/Header", stamp=header_stamp, frame_id=parent),
                child_frame_id=child,
                transform=types.new(
                    "geometry_msgs/msg/Transform",
                    translation=types.new("geometry_msgs/msg/Vector3", x=tx, y=ty, z=tz),
                    rotation=types.new("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw),
                ),
            )
        )
    return types.new("tf2_msgs/msg/TFMessage", transforms=stamped)
