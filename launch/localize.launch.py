"""ros2 launch flm_ros localize.launch.py [params_file:=...] [site:=...] [model:=...] [use_sim_time:=true]
[namespace:=...] [log_level:=info]

Starts the FLM-ROS graph. The node list comes from flm_ros.bringup.node_specs, the same list `flm-run` uses on
machines without `launch`. Topic names are relative and /tf, /tf_static are remapped to tf, tf_static (as Nav2's
localization_launch.py does), so `namespace:=robot1` moves every input, output and the transform tree under
/robot1.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from flm_ros.bringup import BringupArgs, default_params_file, node_specs

ARGUMENTS = (
    ('params_file', str(default_params_file()), 'Parameter file for all FLM-ROS nodes'),
    ('site', '', 'Site file (YAML: map + anchors); empty: the one named in params_file'),
    ('model', '', 'TorchScript model file; empty: the one named in params_file / the shipped checkpoint'),
    ('use_sim_time', 'false', 'Use /clock (bag replay, simulation)'),
    ('namespace', '', 'Namespace for all nodes, their topics, services and tf'),
    ('log_level', 'info', 'Log level of all nodes'),
)


def _nodes(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    specs = node_specs(BringupArgs(
        params_file=value['params_file'], site=value['site'], model=value['model'],
        use_sim_time=value['use_sim_time'].lower() in ('true', '1', 'yes'), namespace=value['namespace']))
    return [
        Node(package=s.package, executable=s.executable, name=s.name, namespace=s.namespace,
             parameters=list(s.parameters), remappings=list(s.remappings), output='screen',
             arguments=['--ros-args', '--log-level', value['log_level']])
        for s in specs
    ]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc) for name, default, desc in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
