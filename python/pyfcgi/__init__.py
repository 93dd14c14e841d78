"""pyfcgi runs Python WSGI applications under IIS and any FastCGI web server.

This package installs the ``pyfcgi`` executable into the environment's ``bin/`` (``Scripts\\`` on Windows), with
the server core beside it. :func:`find_pyfcgi_bin` returns its path: the value IIS's ``scriptProcessor`` needs,
and what ``python -m pyfcgi`` runs.
"""

import os
import sys
import sysconfig

__all__ = ["find_pyfcgi_bin", "__version__"]

try:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("pyfcgi")
    except PackageNotFoundError:  # imported from a source tree
        __version__ = "unknown"
except ImportError:  # pragma: no cover - importlib.metadata exists from 3.8 on
    __version__ = "unknown"


def find_pyfcgi_bin() -> str:
    """Return the absolute path of the installed ``pyfcgi`` executable.

    Looked for where pip puts scripts: the environment's scripts folder, the user scheme's (``pip install
    --user``), then ``bin`` beside the package root (``pip install --target``). Raises ``FileNotFoundError``
    naming the first place when none has it.
    """
    exe = "pyfcgi" + (sysconfig.get_config_var("EXE") or "")
    scripts_path = os.path.join(sysconfig.get_path("scripts"), exe)
    candidates = [scripts_path]
    if sys.version_info >= (3, 10):
        user_scheme = sysconfig.get_preferred_scheme("user")
    elif os.name == "nt":
        user_scheme = "nt_user"
    elif sys.platform == "darwin" and getattr(sys, "_framework", None):
        user_scheme = "osx_framework_user"
    else:
        user_scheme = "posix_user"
    candidates.append(os.path.join(sysconfig.get_path("scripts", scheme=user_scheme), exe))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates.append(os.path.join(package_root, "bin", exe))
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    raise FileNotFoundError(scripts_path)
