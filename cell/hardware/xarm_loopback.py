"""A loopback xArm controller: speaks the xArm-Python-SDK's TCP protocol on 127.0.0.1.

The real SDK (xarm.wrapper.XArmAPI) connects to it exactly as to a UFACTORY control box, so the
xArm driver can be exercised end to end without an arm (and users can dry-run their integration):

    python -m cell.hardware.xarm_loopback --host 127.0.0.1 --command-port 502

Protocol (from xarm/core/comm/socket_port.py, core/wrapper/uxbus_cmd_tcp.py, x3/base.py):
- command port (SDK default 502): "private Modbus-TCP" frames
  request  = trans_id u16 BE | protocol u16 BE (2 or 3) | length u16 BE | funcode u8 | params
  response = trans_id | protocol | length = 2 + len(data) | funcode | state u8 | data
  The state byte carries 0x40 (an error is active), 0x20 (a warning is active), 0x10 (arm not
  ready to move) and 0x08 (command invalid / not supported). Floats are little-endian f32.
- report ports: the server pushes fixed-size frames, each starting with its u32 BE size:
  real-time (30003, 87 bytes, 100 Hz: state/mode, cmdnum, joints, pose, torques),
  normal (30001, 145 bytes) and rich (30002, 245 bytes), both carrying error/warning codes.
The simulated controller follows the documented state machine: motion_enable -> set_mode ->
set_state(0) before motion; an error (or one injected with inject_error) drops it to state 4,
mode 0, and it refuses motion until clean_error -> motion_enable -> set_mode -> set_state(0).
Position-mode joint moves (set_servo_angle) travel at their commanded speed; servo-mode targets
(set_servo_angle_j) are reached at once, as the real arm executes them at full speed, except that a
target further than `servo_jump_limit_rad` from the current pose raises C24 (speed limit), which
is what a jump does to the real arm. No kinematics: the reported TCP pose is `tcp_pose`.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

LOG = logging.getLogger("xarm_loopback")

# Function codes (xarm/core/config/x_config.py, XCONF.UxbusReg).
GET_VERSION, GET_ROBOT_SN = 1, 2
MOTION_EN, SET_STATE, GET_STATE, GET_CMDNUM, GET_ERROR, CLEAN_ERR, CLEAN_WAR = 11, 12, 13, 14, 15, 16, 17
SET_MODE, MOVE_JOINT, MOVE_SERVOJ = 19, 23, 29
SET_COLLIS_SENS, GET_TCP_POSE, GET_JOINT_POS = 37, 41, 42
SET_REDUCED_TRSV, SET_REDUCED_MODE, SET_LIMIT_XYZ = 47, 50, 52

# State byte flags in a command response (UxbusCmdTcp.check_private_protocol).
FLAG_INVALID, FLAG_NOT_READY, FLAG_WARN, FLAG_ERROR = 0x08, 0x10, 0x20, 0x40

# Controller states (xArm developer manual): 1 moving, 2 ready/sleeping, 3 paused, 4 stopped.
STATE_MOVING, STATE_READY, STATE_STOPPED = 1, 2, 4
ERROR_SPEED_LIMIT = 24  # C24: joint speed limit exceeded


@dataclass
class LoopbackConfig:
    host: str = "127.0.0.1"
    command_port: int = 502           # 0 = any free port (tests)
    real_report_port: int = 30003
    normal_report_port: int = 30001
    rich_report_port: int = 30002
    real_report_hz: float = 100.0
    normal_report_hz: float = 10.0
    # The SDK parses "axis,type,robot_sn,box_sn,vX.Y.Z"; < 2.0.102 keeps the SDK on state polling
    # (no motion-feedback frames), which is what this server implements.
    version: str = "6,6,XI1304000000,AC1304000000,v1.12.10"
    initial_joints: tuple[float, ...] = (0.0, -0.3, -0.5, 0.0, 0.8, 0.0)
    tcp_pose: tuple[float, ...] = (300.0, 0.0, 200.0, math.pi, 0.0, 0.0)  # mm, rad
    servo_jump_limit_rad: float = 0.35
    tick_hz: float = 250.0            # internal motion integration rate

    def validate(self) -> None:
        if len(self.initial_joints) != 6:
            raise ValueError(f"initial_joints needs 6 values, got {len(self.initial_joints)}")
        if min(self.real_report_hz, self.normal_report_hz, self.tick_hz) <= 0:
            raise ValueError("report and tick rates must be positive")


@dataclass
class ServoRecord:
    """One set_servo_angle_j the server received (monotonic receive time, joint targets rad)."""
    time: float
    joints: tuple[float, ...]


@dataclass
class ArmState:
    joints: list[float]
    state: int = STATE_STOPPED
    mode: int = 0
    pending_mode: int = 0
    enabled: bool = False
    error_code: int = 0
    warn_code: int = 0
    cmd_num: int = 0
    move_target: list[float] | None = None
    move_speed: float = 0.0
    settings: dict[str, object] = field(default_factory=dict)


def _setting_handler(name: str, fmt: str) -> Callable[["XArmLoopbackServer", bytes], tuple[bytes, bool]]:
    """A command that only stores a safety setting, so tests can check what the driver set."""
    def store(server: "XArmLoopbackServer", params: bytes) -> tuple[bytes, bool]:
        values = struct.unpack(fmt, params[:struct.calcsize(fmt)])
        server._arm.settings[name] = values[0] if len(values) == 1 else list(values)
        return b"", False
    return store


class XArmLoopbackServer:
    """Threads: one acceptor per port, one reader per command client, report pushers, a motion tick."""

    def __init__(self, config: LoopbackConfig | None = None) -> None:
        self.config = config or LoopbackConfig()
        self.config.validate()
        self._arm = ArmState(joints=list(self.config.initial_joints) + [0.0])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: dict[str, socket.socket] = {}
        self._clients: list[socket.socket] = []
        self.servo_commands: list[ServoRecord] = []
        self.command_log: list[int] = []  # function codes in arrival order
        self.stall_s = 0.0  # delay every command reply by this much (tests a stalled SDK call)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "XArmLoopbackServer":
        c = self.config
        reports: dict[str, tuple[int, float, Callable[[], bytes]]] = {
            "real": (c.real_report_port, c.real_report_hz, self._real_report),
            "normal": (c.normal_report_port, c.normal_report_hz, self._normal_report),
            "rich": (c.rich_report_port, c.normal_report_hz, self._rich_report),
        }
        self._listeners["command"] = self._listen(c.command_port)
        self._spawn(self._accept_loop, "command", self._serve_commands)
        for name, (port, hz, frame) in reports.items():
            self._listeners[name] = self._listen(port)
            self._spawn(self._accept_loop, name, self._report_pusher(hz, frame))
        self._spawn(self._motion_loop)
        LOG.info("xArm loopback listening on %s: %s", c.host, self.ports)
        return self

    def stop(self) -> None:
        self._stop.set()
        for sock in list(self._listeners.values()) + list(self._clients):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2.0)

    def __enter__(self) -> "XArmLoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ports(self) -> dict[str, int]:
        return {name: sock.getsockname()[1] for name, sock in self._listeners.items()}

    # ---------------------------------------------------------------- test / user hooks
    def inject_error(self, code: int) -> None:
        """Raise a controller error as the arm would (e.g. 22 self-collision, 31 collision)."""
        with self._lock:
            self._fault(code)

    def inject_warning(self, code: int) -> None:
        with self._lock:
            self._arm.warn_code = code

    def snapshot(self) -> ArmState:
        with self._lock:
            return dataclasses.replace(self._arm, joints=list(self._arm.joints),
                                       settings=dict(self._arm.settings))

    # ---------------------------------------------------------------- sockets
    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, port))
        sock.listen(4)
        sock.settimeout(0.2)
        return sock

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self, name: str, handler: Callable[[socket.socket], None]) -> None:
        listener = self._listeners[name]
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            client.settimeout(0.2)
            self._clients.append(client)
            self._spawn(self._guarded, handler, client)

    def _guarded(self, handler: Callable[[socket.socket], None], client: socket.socket) -> None:
        try:
            handler(client)
        except OSError:
            pass  # client went away
        finally:
            client.close()

    def _serve_commands(self, client: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = client.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 6:
                length = struct.unpack(">H", buffer[4:6])[0] + 6
                if len(buffer) < length:
                    break
                frame, buffer = buffer[:length], buffer[length:]
                reply = self._handle_frame(frame)
                if reply is not None:
                    if self.stall_s > 0:
                        time.sleep(self.stall_s)
                    client.sendall(reply)

    def _report_pusher(self, hz: float, frame: Callable[[], bytes]) -> Callable[[socket.socket], None]:
        def push(client: socket.socket) -> None:
            period = 1.0 / hz
            next_time = time.monotonic()
            while not self._stop.is_set():
                with self._lock:
                    data = frame()
                client.sendall(data)
                next_time += period
                time.sleep(max(0.0, next_time - time.monotonic()))
        return push

    # ---------------------------------------------------------------- command handling
    def _handle_frame(self, frame: bytes) -> bytes | None:
        trans_id, protocol, _length = struct.unpack(">HHH", frame[:6])
        if protocol not in (2, 3):  # heartbeat (protocol 1) and standard Modbus are not served
            return None
        funcode, params = frame[6], frame[7:]
        with self._lock:
            self.command_log.append(funcode)
            handler = self._HANDLERS.get(funcode)
            if handler is None:
                LOG.warning("unsupported function code %d", funcode)
                data, invalid = b"", True
            else:
                data, invalid = handler(self, params)
            state_byte = self._state_flags() | (FLAG_INVALID if invalid else 0)
        body = bytes([funcode, state_byte]) + data
        return struct.pack(">HHH", trans_id, protocol, len(body)) + body

    def _state_flags(self) -> int:
        arm = self._arm
        flags = FLAG_ERROR if arm.error_code else 0
        flags |= FLAG_WARN if arm.warn_code else 0
        flags |= FLAG_NOT_READY if (arm.state >= STATE_STOPPED or not arm.enabled) else 0
        return flags

    def _fault(self, code: int) -> None:
        arm = self._arm
        arm.error_code, arm.state, arm.mode, arm.move_target = code, STATE_STOPPED, 0, None

    def _can_move(self, mode: int) -> bool:
        arm = self._arm
        return arm.enabled and arm.error_code == 0 and arm.state < STATE_STOPPED and arm.mode == mode

    def _get_version(self, _: bytes) -> tuple[bytes, bool]:
        return self.config.version.encode().ljust(40, b"\0")[:40], False

    def _get_robot_sn(self, _: bytes) -> tuple[bytes, bool]:
        parts = self.config.version.split(",")
        return f"{parts[2]}\0{parts[3]}".encode().ljust(40, b"\0")[:40], False

    def _motion_enable(self, params: bytes) -> tuple[bytes, bool]:
        self._arm.enabled = bool(params[1])
        self._arm.state = STATE_STOPPED  # enabling (re)arms the motors; set_state(0) starts motion
        return b"", False

    def _set_state(self, params: bytes) -> tuple[bytes, bool]:
        arm, requested = self._arm, params[0]
        if requested == 0:
            if arm.error_code or not arm.enabled:
                return b"", False  # refused: the error/not-ready flags tell the SDK why
            arm.mode, arm.state = arm.pending_mode, STATE_READY
        elif requested in (3, 4):
            arm.state, arm.move_target = requested, None
        return b"", False

    def _get_state(self, _: bytes) -> tuple[bytes, bool]:
        return bytes([self._arm.state]), False

    def _get_cmdnum(self, _: bytes) -> tuple[bytes, bool]:
        return struct.pack(">H", self._arm.cmd_num), False

    def _get_error(self, _: bytes) -> tuple[bytes, bool]:
        return bytes([self._arm.error_code, self._arm.warn_code]), False

    def _clean_error(self, _: bytes) -> tuple[bytes, bool]:
        self._arm.error_code = 0
        self._arm.state = STATE_STOPPED  # still needs motion_enable -> set_mode -> set_state(0)
        return b"", False

    def _clean_warn(self, _: bytes) -> tuple[bytes, bool]:
        self._arm.warn_code = 0
        return b"", False

    def _set_mode(self, params: bytes) -> tuple[bytes, bool]:
        self._arm.pending_mode = params[0]
        return b"", False

    def _move_joint(self, params: bytes) -> tuple[bytes, bool]:
        values = struct.unpack("<10f", params[:40])
        if not self._can_move(mode=0):
            return b"", False
        self._arm.move_target = list(values[:7])
        self._arm.move_speed = max(values[7], 1e-4)
        self._arm.state = STATE_MOVING
        self._arm.cmd_num += 1
        return b"", False

    def _move_servoj(self, params: bytes) -> tuple[bytes, bool]:
        values = struct.unpack("<10f", params[:40])
        target = list(values[:6])
        self.servo_commands.append(ServoRecord(time.monotonic(), tuple(target)))
        if not self._can_move(mode=1):
            return b"", False
        jump = max(abs(t - q) for t, q in zip(target, self._arm.joints))
        if jump > self.config.servo_jump_limit_rad:
            LOG.warning("servo target %.3f rad away: C%d", jump, ERROR_SPEED_LIMIT)
            self._fault(ERROR_SPEED_LIMIT)
            return b"", False
        self._arm.joints[:6] = target
        return b"", False

    def _get_tcp_pose(self, _: bytes) -> tuple[bytes, bool]:
        return struct.pack("<6f", *self.config.tcp_pose), False

    def _get_joint_pos(self, _: bytes) -> tuple[bytes, bool]:
        return struct.pack("<7f", *self._arm.joints), False

    _HANDLERS: dict[int, Callable[["XArmLoopbackServer", bytes], tuple[bytes, bool]]] = {
        GET_VERSION: _get_version, GET_ROBOT_SN: _get_robot_sn, MOTION_EN: _motion_enable,
        SET_STATE: _set_state, GET_STATE: _get_state, GET_CMDNUM: _get_cmdnum,
        GET_ERROR: _get_error, CLEAN_ERR: _clean_error, CLEAN_WAR: _clean_warn,
        SET_MODE: _set_mode, MOVE_JOINT: _move_joint, MOVE_SERVOJ: _move_servoj,
        GET_TCP_POSE: _get_tcp_pose, GET_JOINT_POS: _get_joint_pos,
        SET_COLLIS_SENS: _setting_handler("collision_sensitivity", "B"),
        SET_REDUCED_MODE: _setting_handler("reduced_mode", "B"),
        SET_REDUCED_TRSV: _setting_handler("reduced_max_tcp_speed", "<f"),
        SET_LIMIT_XYZ: _setting_handler("tcp_boundary", "<6i"),
    }

    # ---------------------------------------------------------------- motion + reports
    def _motion_loop(self) -> None:
        dt = 1.0 / self.config.tick_hz
        while not self._stop.wait(dt):
            with self._lock:
                self._advance(dt)

    def _advance(self, dt: float) -> None:
        arm = self._arm
        if arm.move_target is None:
            return
        step = arm.move_speed * dt
        deltas = [t - q for t, q in zip(arm.move_target, arm.joints)]
        largest = max(abs(d) for d in deltas)
        if largest <= step:
            arm.joints = list(arm.move_target)
            arm.move_target, arm.state = None, STATE_READY
            arm.cmd_num = max(0, arm.cmd_num - 1)
            return
        arm.joints = [q + d * step / largest for q, d in zip(arm.joints, deltas)]

    def _motion_header(self) -> bytes:
        arm = self._arm
        return (bytes([(arm.state & 0x0F) | (arm.mode << 4)]) + struct.pack(">H", arm.cmd_num)
                + struct.pack("<7f", *arm.joints) + struct.pack("<6f", *self.config.tcp_pose)
                + struct.pack("<7f", *([0.0] * 7)))

    def _real_report(self) -> bytes:
        body = self._motion_header()
        return struct.pack(">I", 4 + len(body)) + body

    def _normal_body(self) -> bytes:
        arm = self._arm
        enabled_bits = 0xFF if arm.enabled else 0x00
        collision = int(arm.settings.get("collision_sensitivity", 3))
        return (self._motion_header()                       # bytes 4..87
                + bytes([enabled_bits, enabled_bits, arm.error_code, arm.warn_code])  # mtbrake, mtable
                + struct.pack("<6f", *([0.0] * 6))          # pose offset
                + struct.pack("<4f", *([0.0] * 4))          # tcp load
                + bytes([collision, 3])                     # collision / teach sensitivity
                + struct.pack("<3f", 0.0, 0.0, -1.0))       # gravity direction

    def _normal_report(self) -> bytes:
        body = self._normal_body()
        return struct.pack(">I", 4 + len(body)) + body

    def _rich_report(self) -> bytes:
        body = (self._normal_body()
                + bytes([6, 6, 0, 0, 0, 0])                            # arm type, axis, ids
                + self.config.version.encode().ljust(30, b"\0")[:30]  # version text
                + struct.pack("<5f", 1000.0, 1.0, 50000.0, 0.1, 1000.0)  # tcp jerk/acc/speed limits
                + struct.pack("<5f", 20.0, 0.01, 20.0, 0.0001, 4.0)    # joint jerk/acc/speed limits
                + struct.pack("<2f", 2.3, 2.7)                         # rotation jerk, max acc
                + bytes(16))                                           # servo status/error codes
        return struct.pack(">I", 4 + len(body)) + body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--command-port", type=int, default=502)
    parser.add_argument("--real-report-port", type=int, default=30003)
    parser.add_argument("--normal-report-port", type=int, default=30001)
    parser.add_argument("--rich-report-port", type=int, default=30002)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = LoopbackConfig(host=args.host, command_port=args.command_port,
                            real_report_port=args.real_report_port,
                            normal_report_port=args.normal_report_port,
                            rich_report_port=args.rich_report_port)
    with XArmLoopbackServer(config) as server:
        print(f"xArm loopback serving {server.ports} on {config.host}; Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
