"""A sweep's variants as git objects: config.py's assignments rewritten, tag names that say the values,
and commits and tags made with git's plumbing, so that the branch, HEAD, the index and the work tree stay
as they are.

Usage: source = config_source(root, head); nodes = assignments(source)
       new = rewrite(source, nodes, {"lr": 0.03}); commit = make_commit(root, head, new, "sweep lrs: lr=0.03")
       tags = tag_names(root, "lrs", ["lr"], [(0.01,), (0.03,)])   # ["lrs-lr0.01", "lrs-lr0.03"]
"""
import ast
import os
import re
import subprocess
import tempfile

from utils.cli import UsageError
from utils.launch import git as g
from utils.runs import TAG_MAX, check_tag

_SAFE = re.compile(r"[A-Za-z0-9._+-]+")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def describe_values(names, values):
    return " ".join(f"{name}={v!r}" for name, v in zip(names, values, strict=True))


def _git(root, *argv, input=None, env=None):
    """git with bytes in and out and more environment: utils.launch.git.git speaks text, which would
    turn config.py's \\r\\n into \\n and cannot point git at a temporary index."""
    try:
        out = subprocess.run(["git", "-C", str(root), *argv], capture_output=True, input=input,
                             env={**os.environ, **(env or {})})
    except FileNotFoundError:
        raise UsageError("git is not installed; sweep needs it") from None
    if out.returncode:
        said = "; ".join(line.strip() for line in out.stderr.decode(errors="replace").splitlines() if line.strip())
        raise g.GitError(f"git {argv[0]} failed: {said or f'exit code {out.returncode}'}")
    return out.stdout


def config_source(root, commit):
    out = subprocess.run(["git", "-C", str(root), "cat-file", "blob", f"{commit}:code/config.py"], capture_output=True)
    if out.returncode:
        raise UsageError("HEAD has no code/config.py: a sweep changes its assignments")
    return out.stdout


def assignments(source):
    """{name: ast node} of config.py's top-level `NAME = value` lines (the last of each name)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        where = f" (line {e.lineno})" if getattr(e, "lineno", None) else ""
        raise UsageError(f"code/config.py does not parse{where}: {getattr(e, 'msg', e)}; fix it and commit") from None
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node
    return found


def rewrite(source, nodes, changes):
    """config.py's bytes with each named assignment's value replaced by repr(value): the whole value
    (over as many lines as it spans), nothing else, so each line's comment stays."""
    lines = _LINE.findall(source)
    for node, value in sorted(((nodes[name].value, value) for name, value in changes.items()),
                              key=lambda pair: pair[0].lineno, reverse=True):  # from the bottom: spans above hold
        first, last = node.lineno - 1, node.end_lineno - 1
        text = repr(value).encode("utf-8", errors="surrogateescape")
        lines[first:last + 1] = [lines[first][:node.col_offset] + text + lines[last][node.end_col_offset:]]
    return b"".join(lines)


def _value_text(value):
    """A value as a tag shows it (0.01, True, 16x32 for (16, 32)), or None where it cannot."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return value if _SAFE.fullmatch(value) else None
    if isinstance(value, (list, tuple)) and value:
        parts = [_value_text(v) for v in value]
        return None if None in parts else "x".join(parts)
    return None


def _tag_ok(root, tag):
    try:
        check_tag(tag)
    except UsageError:
        return False
    return len(tag) <= TAG_MAX and g.valid_tag_name(root, tag)


def tag_names(root, prefix, names, variants):
    """<prefix>-<name><value>-... for every variant; <prefix>-<k> for all of them when any such name
    would be invalid, too long or not unique."""
    tags = []
    for values in variants:
        texts = [_value_text(v) for v in values]
        parts = [None if text is None else f"{name}{text}" for name, text in zip(names, texts, strict=True)]
        tags.append(None if None in parts else "-".join([prefix, *parts]))
    if all(t and _tag_ok(root, t) for t in tags) and len(set(tags)) == len(tags):
        return tags
    return [f"{prefix}-{k}" for k in range(len(variants))]


def same_variant(root, commit, head, source):
    """Whether an existing commit is this variant: HEAD's child with this config.py and nothing else changed."""
    parents = g.git(root, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    if parents != [head]:
        return False
    changed = g.git(root, "diff", "--name-only", head, commit, "--").split("\n")
    if changed not in ([""], ["code/config.py"]):
        return False
    return config_source(root, commit) == source


def make_commit(root, head, source, message):
    """A commit off HEAD whose only change is code/config.py, made with a temporary index: no
    checkout, so HEAD, the branch, the index and the work tree stay as they are."""
    blob = _git(root, "hash-object", "-w", "--stdin", input=source).decode().strip()
    mode = _git(root, "ls-tree", head, "--", "code/config.py").decode().split()[0]
    with tempfile.TemporaryDirectory(prefix="exper-sweep-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git(root, "read-tree", head, env=env)
        _git(root, "update-index", "--cacheinfo", f"{mode},{blob},code/config.py", env=env)
        tree = _git(root, "write-tree", env=env).decode().strip()
    return _git(root, "commit-tree", tree, "-p", head, "-m", message).decode().strip()


def make_tag(root, tag, commit, message):
    """Tag the commit (annotated); True when this call made the tag. Not commands.create_tag, whose
    message is run's (`exper run <tag>`): a sweep's tag says the sweep and the values."""
    out = g.git(root, "tag", "-a", "-m", message, tag, commit, check=False)
    if not out.returncode:
        return True
    if g.tag_commit(root, tag) == commit:
        return False
    raise UsageError(f"could not create tag {tag!r}: {out.stderr.strip() or 'git tag failed'}")
