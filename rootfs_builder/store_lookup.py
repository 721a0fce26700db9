"""Finding an image in the store's index by name or id: kept free of imports, for ``pycontain run``."""

_HEX = frozenset("0123456789abcdef")


def candidates(ref: str) -> list[str]:
    """The names ``ref`` may stand for: itself, with ``:latest``, and under docker.io / localhost."""
    names = [ref]
    if ref.rfind(":") <= ref.rfind("/"):
        names.append(ref + ":latest")
    for n in list(names):
        names += [f"docker.io/{n}", f"docker.io/library/{n}", f"localhost/{n}"]
    return names


def find(index: dict, ref: str) -> tuple:
    """(image id, the name it was found by or None when found by id), or (None, None)."""
    names = index.get("names") or {}
    for name in candidates(ref):
        image_id = names.get(name)
        if image_id is not None:
            return image_id, name
    hexref = ref[7:] if ref.startswith("sha256:") else ref
    if 4 <= len(hexref) <= 64 and _HEX.issuperset(hexref):
        matches = [i for i in index.get("images") or {} if i.startswith(hexref)]
        if len(matches) > 1:
            from pycontain.errors import InvalidArgument

            raise InvalidArgument(
                f"image id prefix {ref!r} is ambiguous: it matches {len(matches)} images (give more digits)"
            )
        if matches:
            return matches[0], None
    return None, None
