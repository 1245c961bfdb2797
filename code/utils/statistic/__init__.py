"""Results into tables: run lists (record), their columns (title) and the table itself (table).

`from utils.statistic import runs, curves` gives the DataFrames of frames.py; it is imported only
then (it needs pandas), so record, title and table, which import this package, stay without it.
"""
_FRAMES = ("runs", "curves")


def __getattr__(name):
    if name in _FRAMES:
        from utils.statistic import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_FRAMES])
