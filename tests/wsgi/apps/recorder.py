"""Lets fixture apps leave evidence for the tests: lines appended to files in $PYFCGI_TEST_RECORDS."""

import os
import threading

_lock = threading.Lock()


def record(name, line):
    directory = os.environ.get("PYFCGI_TEST_RECORDS")
    if not directory:
        raise RuntimeError("PYFCGI_TEST_RECORDS is not set")
    with _lock, open(os.path.join(directory, name), "a", encoding="utf-8") as f:
        f.write(line + "\n")
