#!/usr/bin/env bash
# Create or reuse .venv with everything ibc_ros needs. Idempotent: re-installs only
# when requirements.txt, setup.py or the ROS mode changed. Sourced by ../run.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IBC_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# pyrealsense2 links against the system libusb; without it `import pyrealsense2` fails.
ensure_libusb() {
  if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing libusb-1.0-0 (needed by pyrealsense2)"
    (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1; }) ||
      say "WARNING: could not install libusb-1.0-0; the RealSense camera will be unavailable"
  else
    say "WARNING: libusb-1.0 missing and not root: install libusb-1.0-0 for the RealSense camera"
  fi
}

# The operator console's tests drive Debian's Chromium through its WebDriver (tests/test_console.py).
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium and chromium-driver (the console's browser tests; about a minute)"
    (apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }) ||
      say "WARNING: could not install chromium; the console's browser tests will be skipped"
  else
    say "WARNING: chromium/chromedriver missing and not root: apt-get install chromium chromium-driver for the console's browser tests"
  fi
}

if [ -n "${ROS_DISTRO:-}" ]; then
  ros_mode="system-$ROS_DISTRO"   # use the sourced ROS 2's rclpy and messages
  venv_flags=(--system-site-packages)
else
  ros_mode="pypi-kilted"
  venv_flags=()
fi

# One bootstrap at a time: parallel ./run.sh calls must not pip-install into one venv at once.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# The real `ros2 launch` / ros2 CLI (not on PyPI) where this workplace carries them beside the
# checkout: tests/test_ros2_launch.py builds the package with colcon and launches it (it skips,
# saying why, in clones without them). A sourced ROS 2 brings its own.
ros2_tools="$repo/../shared/ros2-tools/install.sh"
with_ros2_tools=""
if [ "$ros_mode" = pypi-kilted ] && [ -x "$ros2_tools" ]; then
  with_ros2_tools="-ros2tools-$(sha256sum "$ros2_tools" | cut -c1-8)"
fi

stamp="$(cat "$repo/requirements.txt" "$repo/setup.py" | sha256sum | cut -c1-16)-$ros_mode$with_ros2_tools"
if [ -f "$venv/.ibc_stamp" ] && [ "$(cat "$venv/.ibc_stamp")" = "$stamp" ]; then
  exit 0
fi

ensure_libusb
ensure_chromium
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv ($($python --version 2>&1), ROS: $ros_mode)"
  "$python" -m venv "${venv_flags[@]}" "$venv"
fi
reqs="$(mktemp)"
trap 'rm -f "$reqs"' EXIT
if [ "$ros_mode" = pypi-kilted ]; then
  cp "$repo/requirements.txt" "$reqs"
else
  grep -v 'ros-wheel' "$repo/requirements.txt" >"$reqs"
fi
# pip repeats one warning per package for every configured local index folder that does not
# exist (hundreds of lines on some machines): count those, show everything else.
quiet_pip() {
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 |
    awk '/^WARNING: Location .* is ignored: it is neither a file nor a directory\.$/ {n++; next} {print}
         END {if (n) printf "[bootstrap] hid %d pip warnings about configured index folders that do not exist\n", n}' >&2
}
say "installing pinned dependencies (first run: a few minutes)"
quiet_pip -r "$reqs"
# --use-pep517: an editable wheel, whose console scripts pip puts in the venv's bin. The legacy
# `setup.py develop` (pip's choice once `wheel` is around) would follow setup.cfg's [develop]
# script_dir, which is for colcon (lib/ibc_ros, where `ros2 run` looks), and leave bin without them.
quiet_pip --no-deps --use-pep517 -e "$repo"
if [ -n "$with_ros2_tools" ]; then
  say "adding the real ros2 launch / CLI tools from $(dirname "$ros2_tools")"
  "$ros2_tools" "$venv" 2>&1 | grep -v -E "^WARNING: Location|^ERROR: pip's dependency resolver|requires ament_index_python" >&2 || true
  [ -x "$venv/bin/ros2" ] || { say "ros2-tools did not install"; exit 1; }
fi
echo "$stamp" >"$venv/.ibc_stamp"
say "ready: $venv"
