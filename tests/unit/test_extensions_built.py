"""The optional C extensions are built where they can be (CI sets SIPWATCH_REQUIRE_NATIVE=1).

They are optional for users (`pip install` succeeds without a compiler and sipwatch runs in
pure Python), so a failed build would otherwise only show as skipped tests and a slower tool.
"""

from __future__ import annotations

import importlib
import os

import pytest

EXTENSIONS = ("sipwatch.sip._speedups", "sipwatch._native", "sipwatch.capture._hep")


@pytest.mark.parametrize("name", EXTENSIONS)
def test_extension_is_built(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get("SIPWATCH_REQUIRE_NATIVE"):
            pytest.fail(f"{name} is not built ({exc}): see the build output of pip install")
        pytest.skip(f"{name} is not built ({exc}); CI requires it (SIPWATCH_REQUIRE_NATIVE)")
