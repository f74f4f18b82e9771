"""Log output: one JSON object per line with the event's fields, human text otherwise, secrets masked."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from taskmaster import logs

TOKEN = "tok-7f3a9c1e5b"
KEY = "q2VuZXJhdGVkLWNsdXN0ZXIta2V5LWJhc2U2NC1mb3JtYXQ="
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def capture(monkeypatch):
    """A logger writing through taskmaster.logs' formatter (format chosen per call) into a buffer."""
    for name in [n for n in __import__("os").environ if n.upper().endswith(logs._SECRET_ENV)]:
        monkeypatch.delenv(name)
    made = []

    def make(log_format: str, secrets=(TOKEN, KEY)):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logs.formatter(log_format, secrets))
        logger = logging.getLogger(f"test.logs.{log_format}.{len(made)}")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        made.append(logger)
        return logger, out

    return make


def test_json_lines_carry_time_level_logger_event_message_and_extra_fields(capture):
    log, out = capture("json")
    log.warning("member %s is %s", "n1", "dead", extra={"event": "dead", "node": "n1", "incarnation": 3})
    log.info("plain line\nwith a newline")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert TS.match(first["ts"]), first["ts"]
    assert first == {"ts": first["ts"], "level": "warning", "logger": log.name, "event": "dead",
                     "msg": "member n1 is dead", "node": "n1", "incarnation": 3}
    assert second["event"] is None and second["msg"] == "plain line\nwith a newline"


def test_an_exception_stays_on_its_line(capture):
    log, out = capture("json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"event": "repair"})
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "repair" and "RuntimeError: boom" in record["exc"]


def test_text_lines_stay_human(capture):
    log, out = capture("text")
    log.info("member %s is %s", "n1", "alive", extra={"event": "join", "node": "n1"})
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO test\.logs\.text\.\d+: member n1 is alive$",
                    out.getvalue().strip()), out.getvalue()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_secrets_are_masked_wherever_they_appear(capture, log_format):
    log, out = capture(log_format)
    log.info("token is %s", TOKEN)
    log.info(f"key {KEY} in the message itself")
    log.info("headers", extra={"event": "x", "auth": f"Bearer {TOKEN}", "nested": {"keys": [KEY]}})
    log.info("Authorization: Bearer some-other-credential, then more")
    log.info("provider said: invalid key sk-ant-api03-abcdefghijklmnopqrstuv")
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    for secret in (TOKEN, KEY, "some-other-credential", "sk-ant-api03-abcdefghijklmnopqrstuv"):
        assert secret not in text, (secret, text)
    assert text.count(logs.REDACTED) >= (7 if log_format == "json" else 5)  # text shows no extras
    assert "then more" in text  # only the credential goes
    if log_format == "json":
        assert all(json.loads(line) for line in text.splitlines())


def test_credentials_in_the_environment_are_masked(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-secret-value")
    monkeypatch.setenv("TASKMASTER_CLUSTER_KEY", f"{KEY},second-key-value")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("json"))
    record = logging.LogRecord("t", logging.INFO, __file__, 1,
                               "anthropic-secret-value / %s / second-key-value", (KEY,), None)
    text = handler.format(record)
    assert "secret-value" not in text and KEY not in text and "second-key-value" not in text


def test_short_or_empty_secrets_mask_nothing():
    redact = logs.Redactor(["", "ab", "info"])
    assert redact("level info: ab") == "level info: ab"


def test_setup_replaces_the_handlers_of_the_root_logger(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("warning", "json", secrets=[TOKEN])
        logs.setup("info", "json", secrets=[TOKEN])
        assert len(root.handlers) == 1 and root.level == logging.INFO
        logging.getLogger("taskmaster.x").info("using %s", TOKEN, extra={"event": "join", "node": "n2"})
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["event"] == "join" and line["node"] == "n2" and line["msg"] == "using <redacted>"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


async def test_a_repair_after_a_merge_is_one_warning_with_its_event(tmp_path, caplog):
    from taskmaster.storage import project_prefix
    from tests.unit.test_repair import MASTER, ROOT, Sides, add_task

    sides = Sides(tmp_path)
    try:
        await add_task(sides.a, "base")
        sides.replicate()
        await add_task(sides.a, "on a")  # both sides number their new task 2
        sides.clock.ms += 1000
        await add_task(sides.b, "on b")
        await sides.a.apply_remote(list(sides.stores[1].scan(project_prefix(ROOT))))
        with caplog.at_level(logging.INFO, logger="taskmaster"):
            assert len(await sides.a.repair(ROOT, MASTER)) == 1
            assert await sides.a.repair(ROOT, MASTER) == []  # nothing left: nothing logged
    finally:
        sides.close()
    (record,) = [r for r in caplog.records if getattr(r, "event", None)]
    assert record.levelno == logging.WARNING and record.event == "repair"
    assert (record.project, record.tag, record.repairs) == (ROOT, MASTER, {"duplicate-id": 1})
