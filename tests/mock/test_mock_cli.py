"""``wanbatch mock`` as a subprocess, ``cli_main`` errors, and the pytest plugin's fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from mock_helpers import body

from wanbatch.mock import ThreadedMock, cli_main


def call(base_url: str, payload: dict[str, Any], key: str = "k") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        base_url + "/services/aigc/multimodal-generation/generation",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_the_base_url_first_and_serves(stop: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    command = [sys.executable, "-m", "wanbatch.mock", "--port", "0", "--image-size", "8x8"]
    command += ["--api-key", "sk-cli", "--budget", "1", "--inspection-trigger", "boom"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v1")
            inspected = call(base_url, body("boom", n=1), key="sk-cli")
            assert inspected[1]["code"] == "DataInspectionFailed"
            assert call(base_url, body(n=1), key="other")[0] == 401
            assert call(base_url, body(n=1), key="sk-cli")[0] == 200
            assert call(base_url, body(n=1), key="sk-cli")[1]["code"] == "Arrearage"
            origin = base_url.removesuffix("/api/v1")
            with urllib.request.urlopen(origin + "/mock/counters", timeout=10) as answer:
                assert json.loads(answer.read())["images_generated"] == 1
        finally:
            process.send_signal(stop)
            _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "sk-cli" not in stderr


def test_cli_rejects_bad_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--error-rate", "2", "--api-key", "sk-hidden"]) == 2
    err = capsys.readouterr().err
    assert "--error-rate" in err and "sk-hidden" not in err
    with pytest.raises(SystemExit):
        cli_main(["--image-size", "big"])


def test_dashscope_mock_fixture(dashscope_mock: ThreadedMock) -> None:
    assert dashscope_mock.base_url.startswith("http://127.0.0.1:")
    status, answer = call(dashscope_mock.base_url, body(n=2))
    assert status == 200
    url = answer["output"]["choices"][0]["message"]["content"][0]["image"]
    with urllib.request.urlopen(url, timeout=10) as image:
        data = image.read()
    assert int.from_bytes(data[16:20], "big") == 64  # the fast stand-in size
    assert dashscope_mock.counters().images_generated == 2
    dashscope_mock.advance_clock(86401)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url, timeout=10)
    expired.value.close()
    assert expired.value.code == 403


def test_dashscope_mock_factory(dashscope_mock_factory: Callable[..., ThreadedMock]) -> None:
    strict = dashscope_mock_factory(api_key="sk-a", budget=0)
    other = dashscope_mock_factory()
    assert strict.base_url != other.base_url
    assert call(strict.base_url, body(n=1), key="sk-a")[1]["code"] == "Arrearage"
    assert call(other.base_url, body(n=1))[0] == 200
    strict.configure(budget=None)
    assert call(strict.base_url, body(n=1), key="sk-a")[0] == 200
    assert strict.config.budget is None and strict.counters().calls == 2


def test_plugin_import_does_not_load_the_mock() -> None:
    code = (
        "import sys, wanbatch.testing;"
        "print('aiohttp' in sys.modules, 'wanbatch.mock' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
