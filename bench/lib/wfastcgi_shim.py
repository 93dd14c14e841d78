#!/usr/bin/env python3
"""Run Microsoft's unmodified wfastcgi.py (3.0.0) on Linux.

    python wfastcgi_shim.py /path/to/wfastcgi.py

wfastcgi.py is a Windows program. Reading its source, exactly one thing stops
it from running on Linux: at import time it binds Win32 functions through
`ctypes.windll.kernel32` (ReadDirectoryChangesW always; CreateFileW,
CloseHandle, GetLastError, ExitProcess and WaitForSingleObject when
`_winapi` is missing), and `ctypes.windll` does not exist off Windows.

This shim installs a stand-in `ctypes.windll` whose kernel32 functions accept
the restype/argtypes assignments and raise OSError if ever called, then runs
wfastcgi.py as __main__ exactly as IIS does (`python.exe wfastcgi.py`).
Nothing in wfastcgi.py is patched.

Those functions are used only by the file-change watcher thread (disabled by
the benchmark's Web.config with WSGI_RESTART_FILE_REGEX="", a documented
wfastcgi setting) and by the `_FCGI_SHUTDOWN_EVENT_` exit thread (started
only with Application Insights). No request path touches them. The other
Windows-only line, `import msvcrt` + setmode(O_BINARY), is already guarded by
wfastcgi itself with `except ImportError: pass`.
"""
import ctypes
import runpy
import sys


class _WindowsOnly:
    def __init__(self, name):
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        raise OSError("kernel32.%s is Windows-only (wfastcgi_shim)" % self.__name__)


class _Kernel32:
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        func = _WindowsOnly(name)
        setattr(self, name, func)
        return func


class _WinDLL:
    kernel32 = _Kernel32()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if not hasattr(ctypes, "windll"):
        ctypes.windll = _WinDLL()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
