"""harness.mounts without root: a fake mount table and fake mount/umount commands that edit it."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from harness import mounts
from harness.paths import cache_root, images_dir

FAKE = textwrap.dedent(
    """\
    import json, re, sys
    argv = sys.argv[1:]
    with open({log!r}, "a") as f:
        f.write(json.dumps([{name!r}, *argv]) + "\\n")
    if {name!r} == "umount":
        def unescape(s):
            return re.sub(r"\\\\([0-7]{{3}})", lambda m: chr(int(m.group(1), 8)), s)
        lines = open({info!r}).readlines()
        target = argv[-1]
        if "-R" in argv:  # its subtree, deepest first, stopping at the first that will not go (as util-linux does)
            points = [unescape(l.split(" ")[4]) for l in lines]
            below = [p for p in points if p == target or p.startswith(target.rstrip("/") + "/")]
            order = sorted(below, key=lambda p: (p.count("/"), len(p)), reverse=True)
        else:
            order = [target]
        gone, code = set(), 0
        for p in order:
            if p.endswith("stuck"):
                code = 32
                break
            gone.add(p)
        open({info!r}, "w").writelines(l for l in lines if unescape(l.split(" ")[4]) not in gone)
        sys.exit(code)
    """
)
LINE = "36 35 98:0 / {mnt} rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"


def escape(path: str) -> str:
    """How the kernel writes a path in mountinfo."""
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /proc/self/mountinfo, and `mount`/`umount` on PATH that log their argv and edit it."""
    info = tmp_path / "mountinfo"
    info.write_text(LINE.format(mnt="/") + LINE.format(mnt="/proc"))
    monkeypatch.setattr(mounts, "MOUNTINFO", str(info))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.log"
    for name in ("mount", "umount"):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n" + FAKE.format(name=name, log=str(log), info=str(info)))
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return info


def add_mount(info: Path, mnt: Path | str) -> None:
    with open(info, "a") as f:
        f.write(LINE.format(mnt=escape(str(mnt))))


def calls(table: Path) -> list[list[str]]:
    log = table.parent / "argv.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


# ------------------------------------------------------------------ parsing


def test_unescape_decodes_every_octal_escape() -> None:
    assert mounts.unescape("/a\\040b\\011c\\012d\\134e") == "/a b\tc\nd\\e"


def test_parse_mountinfo_reads_the_mount_point_field() -> None:
    text = LINE.format(mnt="/srv/with\\040space") + LINE.format(mnt="/tab\\011and\\134slash")
    assert mounts.parse_mountinfo(text) == ["/srv/with space", "/tab\tand\\slash"]


def test_mounts_under_finds_mounts_of_a_path_reached_through_a_link(table: Path, tmp_path: Path) -> None:
    real = tmp_path / "var" / "roothome"
    (real / "work" / "dev").mkdir(parents=True)
    link = tmp_path / "root"
    link.symlink_to(real)
    add_mount(table, real / "work" / "dev")
    add_mount(table, real / "work")
    assert mounts.mounts_under(link / "work") == [str(real / "work" / "dev"), str(real / "work")]
    assert mounts.mounts_under(tmp_path / "elsewhere") == []


def test_mounts_under_matches_paths_with_tab_and_backslash(table: Path, tmp_path: Path) -> None:
    odd = tmp_path / "a\tb\\c"
    odd.mkdir()
    add_mount(table, odd / "dev")
    assert mounts.mounts_under(odd) == [str(odd / "dev")]


def test_a_sibling_with_a_common_prefix_is_not_below(table: Path, tmp_path: Path) -> None:
    add_mount(table, tmp_path / "work2" / "dev")
    assert mounts.mounts_under(tmp_path / "work") == []


# ------------------------------------------------------------------ journal and unmount


def test_mount_is_journaled_before_it_is_made(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "dev").mkdir(parents=True)
    done = mounts.mount(tree, ["mount", "--rbind", "/dev", str(tree / "dev")])
    assert done.returncode == 0
    assert mounts.journal_entries(tree) == [str(tree / "dev")]
    assert calls(table) == [["mount", "--rbind", "/dev", str(tree / "dev")]]


def test_the_journal_is_written_without_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mounts do not outlive the machine: the journal needs no disk flush (about 5 ms a mount at every start)."""

    def no_fsync(_fd: int) -> None:
        raise AssertionError("fsync called")

    monkeypatch.setattr(os, "fsync", no_fsync)
    mounts.record_mount(tmp_path, tmp_path / "proc")
    assert mounts.journal_entries(tmp_path) == [str(tmp_path / "proc")]


def test_mount_refuses_a_mount_point_that_is_a_link(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tmp_path / "host-dir").mkdir()
    (tree / "dev").symlink_to(tmp_path / "host-dir")
    with pytest.raises(mounts.MountError, match="not a folder inside"):
        mounts.mount(tree, ["mount", "--rbind", "/dev", str(tree / "dev")])
    assert calls(table) == []


def test_journal_entries_outside_the_tree_are_ignored(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    mounts.record_mount(tree, tree / "proc")
    with (tree / mounts.JOURNAL).open("a") as f:
        f.write('{"target": "/dev"}\nnot json\n')
    assert mounts.journal_entries(tree) == [str(tree / "proc")]


def slave_before_unmount(made: list[list[str]]) -> None:
    """Every ``umount`` in ``made`` comes after a ``mount --make-rslave`` of that mount or one above it."""
    slaved: list[str] = []
    for argv in made:
        if argv[:2] == ["mount", "--make-rslave"]:
            slaved.append(argv[-1])
        elif argv[0] == "umount":
            assert any(argv[-1] == s or argv[-1].startswith(s + "/") for s in slaved), (argv, made)


def test_unmount_makes_each_subtree_a_slave_then_unmounts_it_in_one_command(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    root = tree / "root"
    (root / "dev" / "pts").mkdir(parents=True)
    (tree / "other" / "sys").mkdir(parents=True)
    for p in (root, root / "dev", root / "dev" / "pts", root / "dev" / "shm", tree / "other" / "sys"):
        add_mount(table, p)
    assert mounts.unmount_under(tree) == []
    made = calls(table)
    # Two top-most mounts: one recursive make-rslave and one umount -R each, slaves first.
    tops = [str(root), str(tree / "other" / "sys")]
    assert made == [["mount", "--make-rslave", p] for p in tops] + [["umount", "-R", p] for p in tops]
    slave_before_unmount(made)


def test_unmount_makes_slaves_first_then_unmounts_deepest_first(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    root = tree / "root"
    for p in (root, root / "dev", root / "dev" / "stuck"):
        add_mount(table, p)
    assert mounts.unmount_under(tree) == [str(root / "dev" / "stuck")]
    made = calls(table)
    assert made[:2] == [["mount", "--make-rslave", str(root)], ["umount", "-R", str(root)]]
    # The per-mount pass: every mount made a slave again, shallowest first, then unmounted deepest first.
    assert made[2:5] == [["mount", "--make-rslave", str(p)] for p in (root, root / "dev", root / "dev" / "stuck")]
    assert made[5:8] == [
        ["umount", str(root / "dev" / "stuck")],
        ["umount", "-l", str(root / "dev" / "stuck")],
        ["umount", str(root / "dev")],
    ]
    slave_before_unmount(made)


def test_topmost_keeps_only_mounts_below_no_other() -> None:
    points = ["/w/root/dev/pts", "/w/root", "/w/root2", "/w/root/sys", "/x"]
    assert mounts.topmost(points) == ["/x", "/w/root", "/w/root2"]


def test_a_mount_that_will_not_go_is_named_and_the_tree_is_left(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "stuck").mkdir(parents=True)
    (tree / "stuck" / "null").write_text("a host device")
    add_mount(table, tree / "stuck")
    with pytest.raises(mounts.MountError, match=r"umount -R -l .*stuck"):
        mounts.unmount_and_remove(tree)
    assert (tree / "stuck" / "null").read_text() == "a host device"


def test_remove_tree_rereads_the_table_and_refuses_a_mounted_tree(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "dev").mkdir(parents=True)
    (tree / "dev" / "sda").write_text("host node")
    add_mount(table, tree / "dev")
    with pytest.raises(mounts.MountError, match="still holds 1 mount"):
        mounts.remove_tree(tree)
    assert (tree / "dev" / "sda").exists()


def test_unmount_and_remove_uses_the_journal_and_the_table(table: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "rootfs" / "dev").mkdir(parents=True)
    mounts.mount(tree, ["mount", "--rbind", "/dev", str(tree / "rootfs" / "dev")])
    add_mount(table, tree / "rootfs" / "dev")  # what the real mount would have done
    mounts.unmount_and_remove(tree)
    assert not tree.exists()
    assert ["umount", "-R", str(tree / "rootfs" / "dev")] in calls(table)


def test_remove_tree_never_follows_links(tmp_path: Path, table: Path) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "link").symlink_to(outside)
    (tree / "file").write_text("y")
    mounts.remove_tree(tree)
    assert not tree.exists()
    assert (outside / "keep").read_text() == "x"
    link = tmp_path / "link-to-host"
    link.symlink_to(outside)
    mounts.remove_tree(link)  # the link goes, not what it points to
    assert not os.path.lexists(link)
    assert (outside / "keep").exists()


def test_remove_tree_of_nothing_is_fine(tmp_path: Path, table: Path) -> None:
    mounts.remove_tree(tmp_path / "missing")
    mounts.unmount_and_remove(tmp_path / "missing")


# ------------------------------------------------------------------ cache paths


def test_cache_root_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "var" / "roothome"
    real.mkdir(parents=True)
    (tmp_path / "root").symlink_to(real)
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "root"))
    assert cache_root() == real
    assert images_dir() == real / "images"


def test_mount_points_of_the_real_table_include_root() -> None:
    assert "/" in mounts.mount_points()
