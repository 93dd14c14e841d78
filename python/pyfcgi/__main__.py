"""``python -m pyfcgi ...`` runs the installed ``pyfcgi`` executable with the same arguments, for when the
environment's scripts folder is not on ``PATH``. On POSIX it replaces this process (so a web server that spawns
``python -m pyfcgi`` tracks pyfcgi itself); Windows has no exec, so it runs a child and returns its exit status.
"""

import os
import sys

from pyfcgi import find_pyfcgi_bin


def _run() -> None:
    exe = find_pyfcgi_bin()
    if sys.platform == "win32":
        import subprocess

        completed = subprocess.run([exe, *sys.argv[1:]])
        sys.exit(completed.returncode)
    os.execvp(exe, [exe, *sys.argv[1:]])


if __name__ == "__main__":
    _run()
