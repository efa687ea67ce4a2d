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

stamp="$(cat "$repo/requirements.txt" "$repo/setup.py" | sha256sum | cut -c1-16)-$ros_mode"
if [ -f "$venv/.ibc_stamp" ] && [ "$(cat "$venv/.ibc_stamp")" = "$stamp" ]; then
  exit 0
fi

ensure_libusb
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
quiet_pip --no-deps -e "$repo"
echo "$stamp" >"$venv/.ibc_stamp"
say "ready: $venv"
