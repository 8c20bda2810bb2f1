"""Run the real ``wan-record`` CLI, pausing once at a chosen write, so a test can signal or kill it there.

    python tests/record_until_paused.py KEY_SUBSTRING COUNT PAUSE_S -- <wan-record arguments>

Every key the store writes goes through ``shared.local_store._durable_put``. When the
COUNT-th key containing KEY_SUBSTRING is about to be written, this prints
``PAUSED <key>`` on stdout and holds that write until a line (or the end) arrives on
stdin, for at most PAUSE_S seconds, so that a test reading stdout knows exactly what is
on disk when it sends its signal: every earlier write, and not this one. The test lets
it go on when it has done its part (``communicate()`` closes stdin), never on a timer
that a slow machine could outrun. A COUNT of 0 never pauses (the reference run).

With ``WAN_TEST_FAIL_AFTER_BYTES=N`` (and ``WAN_TEST_FAIL_ERRNO``, ENOSPC by default) the
store's writes fail with that error once N bytes are written: a full (or read-only)
file system for machines where a test cannot mount a small tmpfs. With
``WAN_TEST_LOG_WRITES=FILE``, each write appends "<bytes written before it> <path>" to FILE.
With ``WAN_TEST_GATE_KEY=SUBSTRING`` and ``WAN_TEST_GATE_DIR=DIR``, the n-th write of a key
containing SUBSTRING waits until DIR holds a file ``go-<n>`` (for at most two minutes): a
recorder that writes its steps when the test lets it, however slow the machine.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import time


def main() -> None:
    substring, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    assert sys.argv[4] == "--"
    from shared import local_store

    original = local_store._durable_put
    from shared.store import RESERVE_BYTES, RESERVE_NAME

    seen, reserve_given = 0, False
    reserve = os.path.join(sys.argv[-1], RESERVE_NAME)  # the store is the last argument
    budget = int(os.environ.get("WAN_TEST_FAIL_AFTER_BYTES", "-1"))
    code = getattr(errno, os.environ.get("WAN_TEST_FAIL_ERRNO", "ENOSPC"))

    log = os.environ.get("WAN_TEST_LOG_WRITES")
    gate_key, gate_dir = os.environ.get("WAN_TEST_GATE_KEY"), os.environ.get("WAN_TEST_GATE_DIR")
    written, gated = 0, 0

    def pausing_put(path, data, exclusive):
        nonlocal seen, budget, reserve_given, written, gated
        if log:
            with open(log, "a") as f:
                f.write(f"{written} {path}\n")  # bytes written before this key
            written += len(memoryview(data).cast("B"))
        if budget >= 0:
            if not reserve_given and not os.path.exists(reserve):
                budget, reserve_given = budget + RESERVE_BYTES, True  # the recorder freed its reserve
            budget -= len(memoryview(data).cast("B"))
            if budget < 0:
                raise OSError(code, os.strerror(code), str(path))
        if gate_key and gate_key in str(path):
            gated += 1
            deadline = time.monotonic() + 120
            while not os.path.exists(os.path.join(gate_dir, f"go-{gated}")) and time.monotonic() < deadline:
                time.sleep(0.02)
        if count and substring in str(path):
            seen += 1
            if seen == count:
                print(f"PAUSED {path}", flush=True)
                if select.select([sys.stdin], [], [], pause)[0]:
                    sys.stdin.readline()
        return original(path, data, exclusive)

    local_store._durable_put = pausing_put
    from recorder.cli import main as wan_record

    wan_record(sys.argv[5:], prog_name="wan-record")


if __name__ == "__main__":
    main()
