"""Shared helpers of the sensor tests: the local Mosquitto broker."""

from __future__ import annotations

import os
import socket
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from chrono.sensors.sources import MqttSettings


def broker_settings(client_prefix: str, poll_s: float) -> MqttSettings:
    """A unique topic and client id on the local Mosquitto; unreachable fails under CI=true."""
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("Mosquitto is not reachable on 127.0.0.1:1883 (CI must start it)")
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883")
    tag = uuid.uuid4().hex[:10]
    return MqttSettings(topic=f"chrono-test/{tag}/#", client_id=f"{client_prefix}-{tag}",
                        poll_s=poll_s)


def forget_session(settings: MqttSettings) -> None:
    """Drop the persistent session a test left on the broker."""
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=settings.client_id, clean_session=True)
    client.connect(settings.host, settings.port)
    client.loop_start()
    time.sleep(0.2)
    client.loop_stop()
    client.disconnect()
