"""sensor_hub: subscribe to the robot's sensors, time-synchronise them and report their health on /diagnostics.

The same sensor front end the localizer uses, as a node of its own: run it first on a new robot to see which
streams arrive, at what rate, how late, and which messages are rejected and why.

    ros2 run flm_ros sensor_hub --ros-args --params-file config/flm.yaml -p site_file:=site.yaml
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.clock import Clock, ClockType
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from flm_core.site import Site, SiteError, load_site
from flm_ros import params as P
from flm_ros.diagnostics import diagnostics_for
from flm_ros.sensor_input import SensorInput
from flm_ros.spin import spin


class SensorHub(Node):
    def __init__(self) -> None:
        super().__init__('flm_sensor_hub')
        P.declare(self)
        self.p = P.values(self)
        self.site: Site | None = None
        if self.p['site_file']:
            try:
                self.site = load_site(self.p['site_file'])
            except SiteError as e:
                self.get_logger().error(f'site file: {e}; UWB ranges will be rejected as unknown_anchor')
        self.inputs = SensorInput(self, self.p, self.site)
        self._last_stats: dict[str, dict] = {}
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(float(self.p['diagnostics_period']), self._publish_diagnostics,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))  # also while /clock is silent
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f'listening to {", ".join(self.inputs.enabled) or "no sensors"}'
                               + (f' in site {self.site.name!r}' if self.site else ''))

    def _on_set_parameters(self, changes) -> SetParametersResult:
        table = {p.name: p for p in P.COMMON}
        for c in changes:
            p = table.get(c.name)
            if p is not None and p.read_only:
                return SetParametersResult(successful=False,
                                           reason=f'{c.name} is fixed at start-up; restart the node to change it')
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        stats = self.inputs.stats()
        self.diag_pub.publish(diagnostics_for(self.get_name(), stats, self.get_clock().now().to_msg(),
                                              self._last_stats))
        self._last_stats = stats


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=sys.argv if args is None else args)
    return spin(SensorHub())


if __name__ == '__main__':
    sys.exit(main())
