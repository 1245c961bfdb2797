"""Save and print a list's table. Usage: table [NAME] [-w COND ...] [-s COL [--desc]] [-g] [-e] [--format FMT] [-a]

One row per run of list NAME (__statistic__/exper-list/NAME.txt): tag, id, then the columns of
title NAME (__statistic__/title/NAME.json, made if missing). Writes every row to
__statistic__/table/NAME.csv and prints the first 100. Options shape both: --where keeps
the runs meeting every condition (numbers compare as numbers), --group makes one row per tag
with mean ± sample std (ddof=1) of each metric, --sort orders the rows (missing values
last), --hide-equal drops the columns equal in every row. A column is named by its full
key, its header, or any unambiguous suffix: lr, val/acc, metrics/val/acc. Grouped, the CSV
gives each metric as three columns: <key> (the mean), "<key> std" and "<key> n".
"""
import csv
import io
import math

from utils.atomic import folders_for, write_text
from utils.cli import UsageError, parser, project_root, warn
from utils.runs import statistic_dir, status
from utils.statistic.columns import headers, number, resolve, text, where
from utils.statistic.group import Mean, aggregated, group, show
from utils.statistic.lists import DEFAULT, check_name, read_runs, shown
from utils.statistic.title import (
    keys_of,
    plan_title,
    read_title,
    title_path,
    write_title,
)

SHOWN_ROWS = 100
FORMATS = {"markdown": "github"}  # aliases of tabulate's format names


def build_parser():
    p = parser("table", __doc__.partition("\n\n")[2])
    p.add_argument("name", nargs="?", default=DEFAULT, metavar="NAME",
                   help=f"the list, title and table (default: {DEFAULT})")
    p.add_argument("-w", "--where", action="append", default=[], metavar="COND",
                   help="keep runs where COND holds: <column><op><value>, op one of = != < <= > >= "
                        "(as in 'lr<0.01', status=finished); repeat to require several")
    p.add_argument("-s", "--sort", metavar="COLUMN", help="sort rows by this column (ascending)")
    p.add_argument("--desc", action="store_true", help="sort descending")
    p.add_argument("-g", "--group", action="store_true", help="one row per tag: n, mean ± std of each metric")
    p.add_argument("-e", "--hide-equal", action="store_true", help="drop the columns equal in every row")
    p.add_argument("--format", default="simple", metavar="FMT",
                   help="simple (default), plain, github or markdown, latex, latex_booktabs, or any tabulate format")
    p.add_argument("-a", "--all", action="store_true", help=f"print every row, not only the first {SHOWN_ROWS}")
    p.add_argument("--full", action="store_true",
                   help="every column in the table itself, whole commits, times and values (no line of equal columns)")
    return p


def build_rows(runs, keys):
    """[tag, id, value of each key] per run; a key the run lacks gives None."""
    spec = [k.split("/", 1) if "/" in k else ("", k) for k in keys]
    sections = {section for section, _ in spec if section}
    status_at = keys.index("status") + 2 if "status" in keys else None
    rows = []
    for tag, id_, stat in runs:
        get = {s: (stat[s] if isinstance(stat.get(s), dict) else {}).get for s in sections}
        get[""] = stat.get
        row = [tag, id_] + [get[section](name) for section, name in spec]
        if status_at:
            row[status_at] = status(stat)  # `dead` for a running run whose process is gone
        rows.append(row)
    return rows


def sort_key(cell):
    """Numbers before text; None and NaN are placed last by the caller."""
    value = cell.mean if isinstance(cell, Mean) else cell
    n = number(value) if not isinstance(value, str) else None
    return (0, n, "") if n is not None else (1, 0, text(value))


def sort_rows(rows, column, descending):
    def missing(row):
        value = row[column].mean if isinstance(row[column], Mean) else row[column]
        return value is None or value == "" or (isinstance(value, float) and math.isnan(value))

    present = [r for r in rows if not missing(r)]
    present.sort(key=lambda r: sort_key(r[column]), reverse=descending)
    return present + [r for r in rows if missing(r)]


def equal_columns(rows, columns):
    """Those of the columns that hold one value in every row (none when there is a single row)."""
    if len(rows) < 2:
        return set()
    return {j for j in columns if all(r[j] == rows[0][j] for r in rows)}


_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet evaluates at the start of a cell


def spreadsheet_safe(cell):
    """A text cell a spreadsheet would run as a formula (=HYPERLINK(...), +cmd|...) gets a leading ',
    which shows it as the text it is; numbers, and text that is a number, stay as they are."""
    if isinstance(cell, str) and cell.startswith(_FORMULA) and number(cell) is None:
        return "'" + cell
    return cell


class _SafeWriter:
    """csv.writer whose text cells cannot become formulas in a spreadsheet."""

    def __init__(self, out):
        self.writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row):
        self.writer.writerow([spreadsheet_safe(text(c) if isinstance(c, (list, dict)) else c) for c in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def csv_text(header, rows, aggregate):
    """The CSV: full keys as headers; a grouped metric becomes three columns: mean, std, n."""
    out = io.StringIO()
    writer = _SafeWriter(out)
    if not any(aggregate):
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()
    head = []
    for h, a in zip(header, aggregate, strict=True):
        head += [h, f"{h} std", f"{h} n"] if a else [h]
    writer.writerow(head)
    for row in rows:
        line = []
        for cell, a in zip(row, aggregate, strict=True):
            if not a:
                line.append(cell)
            elif isinstance(cell, Mean):
                line += [cell.mean, cell.std, cell.n]
            else:
                line += [cell, None, None]
        writer.writerow(line)
    return out.getvalue()


CELL_WIDTH = 40  # characters of a cell on the terminal (the CSV keeps it whole)


def display(cell, key=None, group_n=None, full=False):
    """A cell on the terminal: floats to 6 significant digits, a group's metric as mean ± std, commits
    to 10 characters and times to the minute (unless full), every cell cut to CELL_WIDTH."""
    if isinstance(cell, Mean):
        shown = show(cell) + (f" (n={cell.n})" if group_n is not None and cell.n != group_n else "")
    elif isinstance(cell, float):
        shown = f"{cell:.6g}"
    elif not full and key == "commit" and isinstance(cell, str):
        shown = cell[:10]
    elif not full and key in ("started", "ended") and isinstance(cell, str):
        shown = cell[:16].replace("T", " ")
    else:
        shown = text(cell)
    return shown if full or len(shown) <= CELL_WIDTH else shown[:CELL_WIDTH - 1] + "…"


def print_table(header, keys, rows, fmt, grouped, full=False):
    """rows as a terminal table, headed by `header`; keys: each column's full key."""
    from tabulate import tabulate  # 30 ms: imported only to print

    n_at = 1 if grouped else None
    lines = [[display(c, k, row[n_at] if grouped else None, full) for c, k in zip(row, keys, strict=True)]
             for row in rows]
    numeric = [all(isinstance(c, Mean) or number(c) is not None for c in column if c is not None and c != "")
               for column in zip(*rows, strict=True)] or [False] * len(header)
    align = ["right" if n else "left" for n in numeric]
    print(tabulate(lines, headers=header, tablefmt=FORMATS.get(fmt, fmt), disable_numparse=True, colalign=align))


FOLD_WIDTH = 100  # characters a line of the equal columns takes before it wraps


def folded_line(names, keys, cells, full=False):
    """The columns equal in every row, above the table: 'equal in every row: lr 0.05, ...', wrapped."""
    import textwrap

    pairs = [f"{name} {display(cell, key, full=full) or '-'}" for name, key, cell in zip(names, keys, cells,
                                                                                      strict=True)]
    return "\n".join(textwrap.wrap("equal in every row: " + ", ".join(pairs), FOLD_WIDTH, subsequent_indent="  ",
                                    break_on_hyphens=False))


def check_format(fmt):
    from tabulate import tabulate_formats

    if FORMATS.get(fmt, fmt) not in tabulate_formats:
        raise UsageError(f"--format {fmt!r} is not a table format; use simple, plain, github or markdown, latex, "
                         f"or any of: {', '.join(tabulate_formats)}")


def main(argv):
    args = build_parser().parse_args(argv)
    check_format(args.format)
    if args.desc and not args.sort:
        raise UsageError("--desc orders by a column: add --sort COLUMN")
    root = project_root()
    name = check_name(args.name)
    runs = read_runs(root, name)
    stats = [stat for _, _, stat in runs]
    title, title_text = read_title(root, name), None
    if title is None:  # made now, written once the arguments are known to be good
        title, _, title_text = plan_title(root, name, stats)
    elif missing := set(keys_of(stats)) - set(title.keys) - set(title.hidden):
        warn(f"{len(missing)} keys of these runs are not in {shown(root, title_path(root, name))} "
             f"(such as {min(missing)}); `title {name}` adds them")
    keys = title.keys + title.hidden  # commented-out keys still serve --where and --sort
    every = ["tag", "id"] + keys
    on_screen = dict(zip(headers(title.keys), title.keys, strict=True))  # what the user reads above a column
    conditions = [(every.index(key), test) for key, test in (where(c, every, on_screen) for c in args.where)]
    grouped = ["tag", "n", "runs"] + keys  # the columns of -g
    sort_key_name = resolve(args.sort, grouped if args.group else every, on_screen) if args.sort else None

    table = build_rows(runs, keys)
    rows = [row + [stat.get("seed")] for row, (_, _, stat) in zip(table, runs, strict=True)]  # seed last
    for j, test in conditions:
        rows = [r for r in rows if test(r[j])]
    if args.group:
        rows = group([r[:-1] for r in rows], [aggregated(k) for k in keys], [r[-1] for r in rows])
        every = grouped
    else:
        rows = [r[:-1] for r in rows]
    if sort_key_name is not None:
        rows = sort_rows(rows, every.index(sort_key_name), args.desc)
    first = 3 if args.group else 2  # tag, id (or tag, n, runs), then the title's shown keys
    columns = list(range(first + len(title.keys)))
    if args.hide_equal:
        equal = equal_columns(rows, columns[first:])
        columns = [j for j in columns if j not in equal]
    rows = [[r[j] for j in columns] for r in rows]
    header = [every[j] for j in columns]

    if title_text is not None:
        write_title(root, name, title_text)
    path = statistic_dir(root) / "table" / f"{name}.csv"  # the list's table: every run, every column
    view = args.group or args.where or args.sort or args.hide_equal
    with folders_for(path):
        write_text(path, csv_text(["tag", "id"] + title.keys, [r[:2 + len(title.keys)] for r in table], []))
        if view:
            path = path.with_name(f"{name}.{'grouped' if args.group else 'view'}.csv")
            write_text(path, csv_text(header, rows, [args.group and aggregated(k) for k in header]))
    limit = len(rows) if args.all else SHOWN_ROWS
    names = {key: label for label, key in on_screen.items()}
    fold = [] if args.full or len(rows) < 2 else sorted(equal_columns(rows, range(first, len(header))))
    kept = [j for j in range(len(header)) if j not in fold]
    if fold:
        print(folded_line([names.get(header[j], header[j]) for j in fold], [header[j] for j in fold],
                          [rows[0][j] for j in fold]))
    print_table([names.get(header[j], header[j]) for j in kept], [header[j] for j in kept],
                [[r[j] for j in kept] for r in rows[:limit]], args.format, args.group, args.full)
    if len(rows) > limit:
        print(f"... {len(rows) - limit} more rows in {shown(root, path)} (`table {name} --all` prints every row)")
    if view:
        print(f"wrote {shown(root, path)} (every run of the list: {shown(root, path.with_name(name + '.csv'))})")
    return 0
