"""ament_python package definition for flm_ros (also installable with plain pip).

``pip install '.[onnx]'`` gives the robot runtime: the nodes, flm_core and the ONNX Runtime inference back end (the
default where torch is absent); plain ``pip install .`` leaves the back end out. Extras: ``[eval]`` flm-eval,
flm-play and flm-gen (bags, plots, progress bars, evo for the metric cross-check); ``[train]`` torch for training,
flm-export and the torch back end (for the CPU wheel add ``--extra-index-url https://download.pytorch.org/whl/cpu``,
else pip fetches the multi-GB CUDA build); ``[pcd]`` open3d for .pcd/.ply point maps. Exact versions:
requirements/ (runtime.txt, runtime-humble.txt, lock.txt for development, bench.txt). On a ROS install rosdep
provides most of these instead (package.xml).
"""
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
    package_data={'flm_core': ['checkpoints/*.pt', 'checkpoints/*.onnx', 'checkpoints/*.json', 'checkpoints/*.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', _files('launch/*.py')),
        ('share/' + PACKAGE + '/config', _files('config/*.yaml') + _files('config/*.xml')),
    ],
    python_requires='>=3.10',
    # the runtime without an inference back end: add [onnx] (ONNX Runtime, what a robot needs) or [train] (torch)
    install_requires=['setuptools', 'numpy>=1.26', 'scipy>=1.11', 'PyYAML>=5.4', 'pillow>=9.0'],
    extras_require={
        'onnx': ['onnxruntime>=1.16'],
        'eval': ['rosbags>=0.11.1', 'matplotlib>=3.5', 'tqdm>=4.60', 'evo>=1.30'],
        'train': ['torch>=2.9', 'onnx>=1.16', 'onnxscript>=0.2', 'tqdm>=4.60'],
        'pcd': ['open3d>=0.18'],
    },
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
