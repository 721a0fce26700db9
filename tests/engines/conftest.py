"""The image archive both engines import (built once per session from the test root filesystem)."""

from __future__ import annotations

import pytest

import rootfs_builder

from .engines_env import image_archive


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("engine-image") / "images.tar")
    image_archive(str(rootfs_builder.resolve("default")), path)
    return path
