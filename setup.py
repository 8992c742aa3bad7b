"""Build the optional C accelerator; all metadata lives in pyproject.toml.

optional=True: when there is no compiler (or the build fails) the package still installs and
sipwatch.sip.speedups falls back to the pure-Python parser.
"""

from glob import glob

from setuptools import Extension, setup

SIPCORE = ["src/sipwatch/sip/sipcore.h"]  # shared by the parser's accelerator and the scanner

setup(
    ext_modules=[
        Extension(
            "sipwatch.sip._speedups",
            ["src/sipwatch/sip/_speedups.c"],
            depends=SIPCORE,
            optional=True,
        ),
        Extension(
            "sipwatch._native",
            sorted(glob("src/sipwatch/native/*.c")),
            depends=SIPCORE + sorted(glob("src/sipwatch/native/*.h")),
            libraries=["sqlite3"],  # the writer thread's own connection (libsqlite3-dev)
            optional=True,
        ),
        Extension(
            "sipwatch.capture._hep",
            ["src/sipwatch/capture/_hep.c"],
            optional=True,
        ),
    ]
)
