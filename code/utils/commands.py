"""The commands, in one place: what each runs, what its words complete to, its line of `exper -h`.

Usage: from utils.commands import COMMANDS, SHELL_FUNCTIONS  (plain data: tab completion imports it
with `python3 -S` and nothing else)

code/source.sh defines a shell function for each name of SHELL_FUNCTIONS (a test holds the two
lists equal); `exper <command>` reaches every one of COMMANDS.
"""

# name -> (module, function, what its words complete to, its usage, what it does); modules load only when
# asked for. An alias (continue, re) has no usage line of its own.
# Completion: "tag" a tag, "run" a tag or <tag>/<id>, "unfinished" one that `con` can continue,
# "list" a list name, "" nothing; "*" after it: any number of such words, else one.
COMMANDS = {
    "run": ("utils.launch.commands", "run_main", "tag",
             "run <tag> [-f]", "tag HEAD, train, record everything"),
    "con": ("utils.launch.commands", "continue_main", "unfinished",
             "con|continue <tag>[/<id>] [--dead]", "resume an unfinished run from its last checkpoint"),
    "continue": ("utils.launch.commands", "continue_main", "unfinished",
             "", ""),
    "rerun": ("utils.launch.commands", "rerun_main", "run",
             "re|rerun <tag>[/<id>] [-f]", "run the tag's code again under a new id; report reproduction"),
    "re": ("utils.launch.commands", "rerun_main", "run",
             "", ""),
    "expls": ("utils.statistic.listing", "expls_main", "",
             "expls", "one row per tag"),
    "expels": ("utils.statistic.listing", "expels_main", "run",
             "expels <tag>[/<id>]", "one row per run of a tag (or the one run named)"),
    "expdel": ("utils.launch.delete", "main", "run*",
             "expdel <tag>[/<id>] ... [-y]", "delete runs, and a tag left with none"),
    "record": ("utils.statistic.record", "main", "run*",
             "record [<tag>[/<id>] ...] [-l NAME]", "add runs to __statistic__/exper-list/NAME.txt"),
    "title": ("utils.statistic.title", "main", "list",
             "title [NAME]", "collect the keys of list NAME's runs"),
    "table": ("utils.statistic.table", "main", "list",
             "table [NAME]", "build and print the table of list NAME"),
    "plot": ("utils.statistic.plot", "main", "run*",
             "plot <metric> ... [<tag>[/<id>] ...] [-l LIST]", "curves: mean and band over each tag's runs"),
    "sweep": ("utils.launch.sweep", "main", "tag",
             "sweep <prefix> NAME=VALUES ... [-n K] [-f] [--jobs N] [--slurm]",
             "a tagged commit per combination, K runs each"),
    "itb": ("utils.statistic.itb", "main", "run*",
             "itb [<tag>[/<id>] ...]", "TensorBoard on 127.0.0.1 for the runs named"),
    "complete": ("utils.statistic.complete", "main", "",
             "", ""),
}

# the names source.sh makes shell functions of (`continue` never: it would break the shell's loops)
SHELL_FUNCTIONS = ("run", "con", "re", "rerun", "expls", "expels", "expdel", "record", "title", "table", "itb",
                   "plot", "sweep")
