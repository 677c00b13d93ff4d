"""ament_python package definition for flm_ros (also installable with plain pip)."""
import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'flm_ros'


def _files(pattern: str) -> list[str]:
    return sorted(f for f in glob.glob(pattern, recursive=True) if os.path.isfile(f))


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=['flm_ros', 'flm_ros.*', 'flm_core', 'flm_core.*']),
    package_data={'flm_core': ['checkpoints/*.pt', 'checkpoints/*.json', 'checkpoints/*.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', _files('launch/*.py')),
        ('share/' + PACKAGE + '/config', _files('config/*.yaml') + _files('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='FLM-ROS maintainers',
    maintainer_email='maintainers@flm-ros.org',
    description='Foundation Localization Model for ROS 2: cross-scenario, cross-modality localization.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            # ROS nodes (ros2 run flm_ros <name>)
            'sensor_hub = flm_ros.sensor_hub:main',
            'flm_localizer = flm_ros.localizer_node:main',
            # command-line tools
            'flm-run = flm_ros.runner:main',
            'flm-play = flm_ros.player:main',
            'flm-gen = flm_core.datagen.cli:main',
            'flm-demo = flm_ros.demo:main',
            'flm-eval = flm_ros.evaluate:main',
            'flm-train = flm_core.train_cli:main',
            'flm-export = flm_core.model.export:main',
        ],
    },
)
