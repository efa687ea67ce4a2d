"""recorder_node: records the cell's topics into one rosbag2 MCAP bag per episode.

Subscribes (raw CDR, no decoding) to the topics in config/recorder.yaml; services
recorder/start, recorder/stop, recorder/discard, recorder/mark_success (std_srvs/Trigger);
publishes recorder/events (std_msgs/String, the JSON events also written into the bag) and
recorder/status (std_msgs/String JSON, 1 Hz: recording, episode, elapsed_s, frames, setpoints,
unflushed, written, dropped, kept). Writing (and, with image_format jpeg/png, compressing the
images onto <image topic>/compressed) happens in EpisodeRecorder's thread.
"""
from __future__ import annotations

import json
from typing import Callable

from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ibc_ros.nodes.common import EStopWatch, config_from_parameters, publish_unless_shut_down, run_node
from cell.recording.episodes import EVENTS_TOPIC, EVENTS_TYPE
from cell.recording.recorder import EpisodeRecorder, EpisodeState, RecorderConfig, RecorderStateError
from ibc_ros.nodes.replay_publisher import message_class


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        config = config_from_parameters(self, RecorderConfig)
        recorded = config.recorded_topics()
        topics = {self._resolve(t.name): t.type for t in recorded}
        topics[self._resolve(EVENTS_TOPIC)] = EVENTS_TYPE
        self._event_pub = self.create_publisher(String, EVENTS_TOPIC, QoSProfile(depth=50))
        self._status_pub = self.create_publisher(String, "recorder/status", 10)
        self.recorder = EpisodeRecorder(config, topics, clock_ns=lambda: self.get_clock().now().nanoseconds,
                                        on_event=self._publish_event)
        for bag, count in self.recorder.recovered.items():
            self.get_logger().warning(f"recovered unfinished bag {bag} ({count} messages)")
        for topic in recorded:
            self._subscribe(self._resolve(topic.name), topic.type, topic.best_effort)
        for name, action in (("start", self.recorder.start), ("stop", self.recorder.stop),
                             ("discard", self.recorder.discard), ("mark_success", self.recorder.mark_success)):
            self.create_service(Trigger, f"recorder/{name}", self._trigger(name, action))
        self.estop = EStopWatch(self)   # no new episode (recorder/start) while the e-stop is latched
        self._reported_drops = 0
        self._reported_raw = 0
        self.create_timer(1.0, self._report)
        self.get_logger().info(f"recording {sorted(topics)} into {self.recorder.output_dir} "
                               f"as {sorted(self.recorder.bag_topics)}")

    def _publish_event(self, text: str) -> None:
        # At Ctrl-C, close() stops the running episode as the context shuts down: the event is
        # in the bag, there is just nobody left to tell.
        publish_unless_shut_down(self, self._event_pub, String(data=text))

    def _resolve(self, name: str) -> str:
        return expand_topic_name(name, self.get_name(), self.get_namespace())

    def _subscribe(self, topic: str, msgtype: str, best_effort: bool) -> None:
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE)
        offer = self.recorder.offer
        clock = self.get_clock()
        self.create_subscription(message_class(msgtype), topic,
                                 lambda data: offer(topic, clock.now().nanoseconds, data), qos, raw=True)

    def _trigger(self, name: str, action: Callable[[], EpisodeState]):
        def handle(_request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            refusal = self.estop.refusal("recorder/start (a new episode)") if name == "start" else None
            if refusal:
                self.get_logger().error(refusal, throttle_duration_sec=2.0)
                response.success, response.message = False, refusal
                return response
            try:
                episode = action()
            except RecorderStateError as exc:
                response.success, response.message = False, str(exc)
                return response
            response.success = True
            response.message = f"{name}: episode {episode.index} ({episode.path})"
            self.get_logger().info(response.message)
            return response
        return handle

    def _report(self) -> None:
        rec = self.recorder
        episode = rec.episode
        status = {"recording": episode is not None, "episode": episode.index if episode else None,
                  "written": rec.written, "dropped": rec.dropped, "pending": rec.pending(),
                  "unflushed": rec.unflushed, "kept": rec.kept,
                  "errors": rec.errors[-3:]}
        if episode is not None:   # the running episode, as the operator console shows it
            status["elapsed_s"] = round((self.get_clock().now().nanoseconds - episode.start_ns) * 1e-9, 2)
            status["frames"] = episode.messages.get(self._resolve("camera/image_raw"), 0)
            status["setpoints"] = episode.messages.get(self._resolve("setpoint_delta"), 0)
        self._status_pub.publish(String(data=json.dumps(status)))
        if rec.dropped > self._reported_drops:
            self.get_logger().warning(f"disk too slow: {rec.dropped - self._reported_drops} messages dropped")
            self._reported_drops = rec.dropped
        if rec.stored_raw > self._reported_raw:
            self.get_logger().warning(f"{rec.stored_raw - self._reported_raw} frames stored raw, not "
                                      f"{rec.config.image_format}: {rec.stored_raw_reason}")
            self._reported_raw = rec.stored_raw

    def close(self) -> None:
        """A running episode is stopped and kept (as a failure unless marked): nothing is lost."""
        self.recorder.close()


def main(args: list[str] | None = None) -> None:
    run_node(RecorderNode, args)


if __name__ == "__main__":
    main()
