"""The rule that tag, list and sweep names follow. Usage: if plain(name): ...

Plain text only (no imports): tab completion uses it under `python3 -S`. A name our commands
make is safe as a folder name, a git ref and a shell word: ASCII letters, digits and . _ + -,
starting with a letter or digit.
"""

_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")


def plain(name):
    return bool(name) and name[0].isalnum() and name.isascii() and all(c in _ALLOWED for c in name)
