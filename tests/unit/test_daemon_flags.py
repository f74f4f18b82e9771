"""taskmasterd's flags: --replicas N|all, --write-quorum W, --zone, --log-format, and bad values."""

from __future__ import annotations

import pytest

from taskmaster.daemon import parse_args


def test_replicas_and_write_quorum():
    assert parse_args([]).replicas == 3 and parse_args([]).write_quorum == 2
    assert parse_args(["--replicas", "all"]).replicas is None
    assert parse_args(["--replicas", "5", "--write-quorum", "3"]).replicas == 5


def test_zone_and_log_flags():
    assert (parse_args([]).zone, parse_args([]).log_format, parse_args([]).log_level) == ("", "text", "info")
    config = parse_args(["--zone", "eu-west-1", "--log-format", "json", "--log-level", "WARNING"])
    assert (config.zone, config.log_format, config.log_level) == ("eu-west-1", "json", "warning")


@pytest.mark.parametrize("argv", [["--replicas", "0"], ["--replicas", "many"], ["--write-quorum", "0"],
                                  ["--write-quorum", "x"], ["--log-format", "xml"], ["--log-level", "loud"],
                                  ["--profile", "moon"], ["--http", "nowhere"], ["--join", "a:99999"]])
def test_bad_replication_flags_are_refused_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage lines
    assert message.startswith("taskmasterd: error:") and argv[0] in message, message


def test_a_full_collection_freezes_its_survivors_and_a_young_one_does_not():
    import gc

    from taskmaster.daemon import freeze_after_full_collection

    def frozen(obj) -> bool:  # frozen objects leave the generations the collector scans
        return not any(o is obj for o in gc.get_objects())

    gc.unfreeze()
    gc.callbacks.append(freeze_after_full_collection)
    try:
        kept = [[i] for i in range(10)]
        gc.collect(0)
        assert not frozen(kept) and gc.get_freeze_count() == 0
        gc.collect()
        assert frozen(kept) and frozen(kept[3])
    finally:
        gc.callbacks.remove(freeze_after_full_collection)
        gc.unfreeze()
