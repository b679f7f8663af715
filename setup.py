"""Install the hot-line appliance: its four packages and the ``hotline`` command."""
from setuptools import find_packages, setup

setup(
    name="hotline",
    version="0.1.0",
    description="A hot-line appliance: GSM, analog and SIP lines, IVR, queues, operators, recording, web UI",
    python_requires=">=3.11",
    packages=find_packages(include=["firmware*", "appliance*", "web_ui*", "hardware*"]),
    package_data={"web_ui": ["templates/*.html", "static/*", "translations/*/LC_MESSAGES/messages.po"]},
    install_requires=[
        "pyserial>=3.5",
        "tinydb>=4.8",
        "pydantic>=2.6,<3",  # the configuration's typed models (appliance/models.py)
        "flask>=3.0",
        "flask-wtf>=1.2",
        "flask-babel>=4.0",
        "waitress>=3.0",
        "pydub>=0.25",
        "audioop-lts; python_version>='3.13'",  # pydub needs audioop, which Python 3.13 dropped
        "numpy>=1.24",
        "gpiozero>=2.0",
        # The SIP stack. Wheels exist for x86_64 only; a Raspberry Pi builds it with
        # systemd/build-pjsua2.sh. Without it the box runs with its SIP lines disabled.
        "pjsua2-python==2.15.1.post1; platform_machine=='x86_64' and python_version<'3.13'",
    ],
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.5", "playwright>=1.40", "hypothesis>=6",
                              "schemathesis>=4.32,<5"]},
    entry_points={"console_scripts": ["hotline = appliance.cli:main"]},
)
