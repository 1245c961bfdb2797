"""The few git questions the commands ask. Usage: head = git(root, "rev-parse", "HEAD")

Arguments go to git as a list (never through a shell), and user-supplied names are passed
after `--` or as full refs (refs/tags/<tag>), so they cannot be read as options.
"""
import os
import subprocess

from utils.cli import UsageError


class GitError(UsageError):
    """git refused (a locked ref, a damaged repository): its own words, as one error line."""


def git(root, *argv, check=True):
    try:
        out = subprocess.run(["git", "-C", str(root), *argv], capture_output=True, text=True)
    except FileNotFoundError:
        raise UsageError("git is not installed; run, con and rerun need it") from None
    if check and out.returncode:
        said = "; ".join(line.strip() for line in out.stderr.splitlines() if line.strip())
        raise GitError(f"git {argv[0]} failed: {said or f'exit code {out.returncode}'}")
    return out.stdout.strip() if check else out


def head(root):
    """HEAD's commit; a clear error outside a repository, in a project that is only a folder of a
    bigger repository (tags and `git show <tag>:code/...` would then miss), or before the first commit."""
    top = git(root, "rev-parse", "--show-toplevel", check=False)
    if top.returncode:
        raise UsageError(f"{root} is not a git repository: `git init && git add -A && git commit` first")
    if os.path.realpath(top.stdout.strip()) != os.path.realpath(root):
        raise UsageError(f"{root} is a folder inside the git repository {top.stdout.strip()}; "
                         "the project must be a repository of its own (`git init` in it)")
    out = git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    if out.returncode:
        raise UsageError("the repository has no commit yet: commit your code first (`git commit`)")
    return out.stdout.strip()


def tag_commit(root, tag):
    """The commit a tag marks, or None."""
    out = git(root, "rev-parse", "--verify", "-q", f"refs/tags/{tag}^{{commit}}", check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def dirty(root):
    """The paths `git status` shows as modified, staged, or untracked and not ignored."""
    out = git(root, "status", "--porcelain", "-z", "--untracked-files=all", check=False)
    if out.returncode:
        git(root, "status", "--porcelain")  # raises with git's own words
    entries, paths = iter(out.stdout.split("\0")), []
    for entry in entries:
        if len(entry) > 3:  # "XY path"
            paths.append(entry[3:])
            if "R" in entry[:2] or "C" in entry[:2]:
                next(entries, None)  # a rename's or copy's source follows, with no status of its own
    return paths


def subject(root, commit):
    return git(root, "log", "-1", "--format=%s", commit)


def branch(root):
    """The current branch, or None on a detached HEAD."""
    out = git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return out.stdout.strip() or None


def show(root, commit, path):
    """A file's content at a commit, or None when it has no such file."""
    out = git(root, "show", f"{commit}:{path}", check=False)
    return out.stdout if out.returncode == 0 else None


def export(root, commit, path, folder):
    """Write the files of `path` at `commit` into folder (git archive: exactly what the commit holds)."""
    import io
    import tarfile

    try:
        out = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", commit, "--", path],
                             capture_output=True)
    except FileNotFoundError:
        raise UsageError("git is not installed; run, con and rerun need it") from None
    if out.returncode:
        said = "; ".join(line.strip() for line in out.stderr.decode(errors="replace").splitlines() if line.strip())
        raise GitError(f"git archive failed: {said or f'exit code {out.returncode}'}")
    with tarfile.open(fileobj=io.BytesIO(out.stdout), mode="r:") as archive:
        archive.extractall(folder, filter="data")


def branch_exists(root, name):
    return git(root, "show-ref", "--verify", "-q", f"refs/heads/{name}", check=False).returncode == 0


def valid_tag_name(root, tag):
    return git(root, "check-ref-format", f"refs/tags/{tag}", check=False).returncode == 0
