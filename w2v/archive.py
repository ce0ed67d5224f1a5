"""Safe extraction of chosen files from a zip archive, and file checksums.

An archive with any member that could write outside the target folder (an absolute path, a `..`
component) or that is a link is refused whole, before anything is written. Only the requested
files are extracted, flat into the target folder, with their sha256 computed on the way.

    sha = extract_files("sst.zip", ["datasetSentences.txt", "datasetSplit.txt"], Path("out"))
"""
from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

HASH_BLOCK = 1 << 20


class ArchiveError(ValueError):
    """An archive that is not a readable zip, or that holds a member we refuse or miss."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def copy_with_sha256(source, target: Path) -> str:
    """Copy the readable binary `source` into the new file `target`; return the sha256 of the bytes."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        while block := source.read(HASH_BLOCK):
            digest.update(block)
            write_naming_file(out, block)
    return digest.hexdigest()


def write_naming_file(out, block: bytes) -> None:
    """out.write(block), with the file's name in the OSError (disk full, file too large)."""
    try:
        out.write(block)
    except OSError as error:
        raise OSError(error.errno, error.strerror, out.name) from None


def unsafe_member_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this member would be unsafe, or None if it is a plain relative file or folder."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in parts:
        return "has a '..' component"
    mode = info.external_attr >> 16
    if info.create_system == 3 and (stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                                    or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return "is a link or special file" if stat.S_ISLNK(mode) else "is a special file"
    return None


def extract_files(archive: str | os.PathLike, names: Iterable[str], target: str | os.PathLike) -> dict[str, str]:
    """Extract the members whose file name (last path component) is in `names` into `target`.

    Each name must match exactly one member outside `__MACOSX/`. The whole archive is checked
    first; any unsafe member anywhere refuses it. Returns {name: sha256} of the written files.
    Raises ArchiveError (not a zip, truncated, CRC error, unsafe or missing member).
    """
    archive, target = Path(archive), Path(target)
    names = list(names)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                reason = unsafe_member_reason(info)
                if reason:
                    raise ArchiveError(f"{archive}: refusing the whole archive: member {info.filename!r} {reason}")
            chosen = {}
            for name in names:
                matches = [info for info in members if not info.is_dir()
                           and PurePosixPath(info.filename).name == name
                           and not info.filename.startswith("__MACOSX/")]
                if len(matches) != 1:
                    found = "no member" if not matches else f"{len(matches)} members"
                    raise ArchiveError(f"{archive}: {found} named {name!r}; is this the right archive?")
                chosen[name] = matches[0]
            checksums = {}
            for name, info in chosen.items():
                with zf.open(info) as source:
                    checksums[name] = copy_with_sha256(source, target / name)
            return checksums
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise ArchiveError(f"{archive} is not a readable zip archive (truncated or corrupt: {error})") from None
