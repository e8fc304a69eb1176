"""Planning a batch: which files the inputs name, and where each result goes.

``plan_jobs`` turns the command line's files, folders and globs into jobs whose result
names never collide (not even on file systems that ignore case or Unicode form), leave
the output folder's earlier results out of the inputs and never overwrite an input;
``check_output_folders`` refuses, before any work, outputs that could not be written.
The jobs are run in ``runner.py``.
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from colorcli.errors import UsageError
from colorcli.files import resolved
from colorcli.finding import (
    find_images,
    is_image_name,
    link_problem,
    looks_like_image,
    needs_plugin,
    not_regular,
    plugin_note,
    search_denied,
)
from colorcli.images import OUTPUT_FORMATS, format_suffix, output_format


@dataclass(frozen=True)
class Job:
    """One input and where its result goes; ``error`` marks an input refused before loading, and
    ``left_out`` one that is no photo (a FIFO or folder named like one): said, but not a failure."""

    src: Path
    dst: Path | None
    error: str | None = None
    left_out: bool = False


def _has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def is_glob(item: Path) -> bool:
    return _has_wildcard(str(item)) and not os.path.exists(item)


def _glob_root(pattern: Path) -> Path:
    """The folder a glob pattern searches below: its longest leading part that is a folder
    as written (so a folder named 'scans [1950]' is that folder, not a pattern); if no
    leading part is one, its parts before the first wildcard (which then match nothing)."""
    parts = pattern.parts
    for n in range(len(parts) - 1, 0, -1):
        head = Path(*parts[:n])
        if os.path.isdir(head):
            return head
    fixed = []
    for part in parts:
        if _has_wildcard(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path()


def _glob(pattern: Path) -> list[Path]:
    """The paths a glob pattern matches, sorted; its root folder is taken as written."""
    root = _glob_root(pattern)
    rest = Path(*pattern.parts[len(root.parts) :])
    return sorted(root.glob(str(rest)))


def _nested_output(root: Path, output: Path | None) -> Path | None:
    """The output folder if it lies strictly inside ``root``: its files are earlier results, not inputs."""
    if output is None:
        return None
    out, base = resolved(output), root.resolve()
    return out if out != base and out.is_relative_to(base) else None


def _outside(files: list[Path], nested: Path | None, notes: list[str] | None = None) -> list[Path]:
    """The files not inside ``nested`` (the output folder); a note says how many were left out."""
    if nested is None:
        return files
    kept = [f for f in files if not resolved(f).is_relative_to(nested)]
    if len(kept) < len(files) and notes is not None:
        notes.append(
            f"left out {len(files) - len(kept)} image(s) in the output folder {nested} "
            "(earlier results, or choose another -o)"
        )
    return kept


def _refused(path: Path, hint: str = "") -> Job:
    """An entry named like an image that is no image file: a link leading nowhere fails (a photo
    was meant to be there); anything else (a folder, FIFO, socket, device) is left out, and said."""
    broken = link_problem(path)
    if broken is not None:
        return Job(path, None, f"{path}: is {broken}")
    return Job(path, None, f"{path}: left out: {not_regular(path) or 'not a file'}{hint}", left_out=True)


def _by_path(entry: tuple[Path, Path] | Job) -> Path:
    return entry.src if isinstance(entry, Job) else entry[0]


def expand_inputs(
    inputs: list[Path], recursive: bool, exclude: Path | None = None, notes: list[str] | None = None
) -> list[tuple[Path, Path] | Job]:
    """(file, path relative to the output folder without suffix) for every input file, and a
    Job with an ``error`` for each refused input, in the order the inputs were given.

    Folders contribute their images (recursively with `recursive`, keeping
    subfolders) and glob patterns their matches, except files inside ``exclude``
    (the output folder) when it lies inside the folder searched, so a rerun does not
    colorize its own results. Files are taken as they are. A file named twice is
    colorized once. A folder without images is refused with a reason rather than
    passed over in silence. Glob matches are kept if they look like images (by
    suffix, or by their first bytes). Anything left out is said in ``notes``, or,
    for entries named like images that are no image file (a FIFO, a folder, a link
    leading nowhere), by a Job of their own in their place.
    """
    found: list[tuple[Path, Path] | Job] = []
    for item in inputs:
        if search_denied(item):
            found.append(Job(item, None, f"{item}: permission denied (a folder on its path cannot be searched)"))
        elif os.path.isdir(item):
            heic: list[Path] = []
            odd: list[Path] = []
            nested = _nested_output(item, exclude)
            images = _outside(find_images(item, recursive, heic, odd), nested, notes)
            if heic and images and notes is not None:
                notes.append(f"{item}: {plugin_note(heic)}")
            if not images:
                hint = f" ({plugin_note(heic)})" if heic else "" if recursive else " (-r looks in subfolders)"
                found.append(Job(item, None, f"{item}: is a folder with no images colorcli can read{hint}"))
            folders_hint = "" if recursive else " (-r looks in subfolders)"
            refused = [_refused(p, folders_hint if p.is_dir() else "") for p in _outside(odd, nested)]
            in_folder = [(f, f.relative_to(item).with_suffix("")) for f in images]
            found.extend(sorted([*in_folder, *refused], key=_by_path))
        elif is_glob(item):
            matched = _glob(item)
            regular = [m for m in matched if m.is_file()]
            odd = [m for m in matched if is_image_name(m) and not m.is_file()]
            files = [m for m in regular if looks_like_image(m)]
            kept = set(files)
            heic = [m for m in regular if m not in kept and needs_plugin(m)]
            others = len(regular) - len(files) - len(heic)
            if notes is not None and heic:
                notes.append(f"{item}: {plugin_note(heic)}")
            if notes is not None and others:
                notes.append(f"{item}: left out {others} non-image file(s)")
            nested = _nested_output(_glob_root(item), exclude)
            matches = _outside(files, nested, notes)
            refused = [_refused(m) for m in _outside(odd, nested)]
            if not matches and not refused and notes is not None:
                notes.append(f"{item}: matches no images")
            found.extend(sorted([*((m, Path(m.stem)) for m in matches), *refused], key=_by_path))
        elif (problem := not_regular(item)) is not None:
            found.append(Job(item, None, f"{item}: is {problem}"))  # refused at once: opening a FIFO would hang
        else:
            found.append((item, Path(item.stem)))
    seen: set[Path] = set()
    unique: list[tuple[Path, Path] | Job] = []
    for entry in found:
        key = resolved(_by_path(entry))  # a refused folder named twice too
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def plan_jobs(
    inputs: list[Path],
    output: Path | None,
    recursive: bool = False,
    fmt: str = "png",
    output_is_dir: bool = False,
    notes: list[str] | None = None,
) -> list[Job]:
    """Where each input's result goes.

    No output (None): each result goes beside its input (see ``_jobs_beside_inputs``).
    One input file and an output that is not an existing folder (nor written as
    one, with a trailing slash: ``output_is_dir``): the output is that file.
    Otherwise the output is a folder and each result is named after its input's
    stem with `fmt`'s suffix; inputs whose names would collide (photo.jpg and
    photo.png) are told apart by their original suffix (photo_jpg.png,
    photo_png.png), so nothing is silently overwritten. Inputs refused up front
    (an empty folder, a FIFO, a symlink loop) come back as jobs with an ``error``;
    inputs left out (earlier results, non-images a glob matched) are said in ``notes``.
    """
    suffix = format_suffix(fmt)
    if output is None:
        return _jobs_beside_inputs(inputs, recursive, suffix, notes)
    for item in inputs:
        searched = item if os.path.isdir(item) else _glob_root(item) if is_glob(item) else None
        if searched is None or not os.path.exists(output) or output.resolve() != searched.resolve():
            continue
        # A glob whose pattern cannot match the results ('*.jpg' writing .png) finds none of them again.
        if os.path.isdir(item) or fnmatch.fnmatch(f"x{suffix}", "*" + Path(item.name).suffix.lower()):
            raise UsageError(
                f"{output}: is also the folder the input {item} searches, so a second run would colorize "
                "its results again; choose another -o"
            )
    entries = expand_inputs(inputs, recursive, exclude=output, notes=notes)
    files = [e for e in entries if not isinstance(e, Job)]
    refused = [e for e in entries if isinstance(e, Job)]
    if not files:
        raise _no_input_images(refused, notes)
    named_files = not any(os.path.isdir(item) or is_glob(item) for item in inputs)
    if named_files and len(entries) == 1 and not os.path.isdir(output) and not output_is_dir:
        output_format(output)
        return [Job(files[0][0], output)]
    if not output_is_dir and not os.path.isdir(output) and output.suffix.lower() in OUTPUT_FORMATS:
        # Files named on the command line count even where one is refused (a FIFO, a symlink loop).
        many = f"{len(entries)} files" if named_files else "a folder or glob"
        given = f"{len(files)} images" if len(files) > 1 else many
        raise UsageError(
            f"{output}: names one image file, but {given} went in; -o takes a folder for several "
            f"(write {output}/ if you want a folder of that name)"
        )
    dst = _output_names(files, output, suffix)
    return [entry if isinstance(entry, Job) else Job(entry[0], dst[entry[0]]) for entry in entries]


def _no_input_images(refused: list[Job], notes: list[str] | None) -> UsageError:
    """The error for inputs that hold no image at all, with why each was refused or left out."""
    reasons = "; ".join([j.error for j in refused if j.error] + (notes or []))
    return UsageError("no input images found" + (f" ({reasons})" if reasons else ""))


RESULT_TAG = "-color"  # without -o, photo.jpg's result is photo-color.png beside it


def _jobs_beside_inputs(inputs: list[Path], recursive: bool, suffix: str, notes: list[str] | None) -> list[Job]:
    """Jobs whose results go beside their inputs, each named after its input's stem plus
    RESULT_TAG, with ``suffix`` (photo.jpg: photo-color.png; photo.jpg and photo.png beside
    each other: photo-color_jpg.png and photo-color_png.png).

    Results of an earlier run found among the inputs (a folder colorized before, in any
    output format) are left out, with a note, so the same command again colorizes nothing twice.
    """
    entries = expand_inputs(inputs, recursive, notes=notes)
    files = [e[0] for e in entries if not isinstance(e, Job)]
    if not files:
        raise _no_input_images([e for e in entries if isinstance(e, Job)], notes)
    results = {_place_key(f.parent / name) for f in files for name in _result_names(f)}
    earlier = {f for f in files if _place_key(f) in results}
    if earlier and notes is not None:
        names = sorted(f.name for f in earlier)
        notes.append(
            f"left out {len(earlier)} earlier result(s) beside their inputs "
            f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
        )
    dst = _names_beside([f for f in files if f not in earlier], suffix)
    return [e if isinstance(e, Job) else Job(e[0], dst[e[0]]) for e in entries if isinstance(e, Job) or e[0] in dst]


def _result_names(src: Path) -> list[str]:
    """The names a result of ``src`` beside it can have, in every output format: photo-color.png,
    and photo-color_jpg.png where photo.jpg had a namesake."""
    told_apart = f"{src.stem}{RESULT_TAG}_{src.suffix.lstrip('.').lower()}"
    return [f"{stem}{suffix}" for stem in (src.stem + RESULT_TAG, told_apart) for suffix in OUTPUT_FORMATS]


def _names_beside(files: list[Path], suffix: str) -> dict[Path, Path]:
    """Each file's result beside it (see ``_jobs_beside_inputs``), told apart from its neighbours' as
    ``_output_names`` tells results in one output folder apart."""
    by_folder: dict[Path, list[Path]] = {}
    for f in files:
        by_folder.setdefault(f.parent.resolve(), []).append(f)
    dst: dict[Path, Path] = {}
    for group in by_folder.values():
        dst.update(_output_names([(f, Path(f.stem + RESULT_TAG)) for f in group], group[0].parent, suffix))
    return dst


def _place_key(path: Path) -> str:
    """Where a file is (its folder resolved, so in/a.png and ./in/a.png agree), as ``_name_key`` compares names."""
    return _name_key(path.parent.resolve() / path.name)


def _name_key(path: Path) -> str:
    """A path as file systems that ignore case (Windows, macOS) or Unicode normalisation (macOS:
    'café' typed and 'café' from a camera) compare it, so results never collide there."""
    return unicodedata.normalize("NFC", str(path)).casefold()


def _output_names(files: list[tuple[Path, Path]], output: Path, suffix: str) -> dict[Path, Path]:
    """Each file's result path in the output folder: its relative name with ``suffix``, told
    apart from files of the same name by their original suffix, then by a count. Names of
    folders (existing ones, and those the results of subfolders go into) are taken too."""
    by_name: dict[Path, list[Path]] = {}
    for src, rel in files:
        by_name.setdefault(rel, []).append(src)
    dst: dict[Path, Path] = {}
    taken = {_name_key(output / folder) for _, rel in files for folder in rel.parents if folder != Path(".")}
    for rel, sources in by_name.items():
        for src in sources:
            name = rel if len(sources) == 1 else rel.with_name(f"{rel.name}_{src.suffix.lstrip('.').lower()}")
            path, n = output / f"{name}{suffix}", 1
            # still taken (case-insensitive file systems too), or a folder already there: count up
            while _name_key(path) in taken or path.is_dir():
                path, n = output / f"{name}-{n}{suffix}", n + 1
            taken.add(_name_key(path))
            dst[src] = path
    return dst


def check_output_folders(jobs: list[Job], output: Path | None) -> None:
    """Fail before any work when the output folder (``output``, or the folder of ``output``
    when it names the one result file; without an output, each folder results go into
    beside their inputs) could not be created or written.

    Nothing is made here: folders are made as their first result is written, so a run
    whose inputs all fail, or that is stopped early, leaves no empty folders behind.
    """
    results = [j.dst for j in jobs if j.dst is not None]
    if not results:
        return
    if output is None:
        for folder in sorted({r.parent for r in results}):
            if folder.is_dir() and not os.access(folder, os.W_OK):  # a missing one: its inputs fail alone
                raise UsageError(f"{folder}: folder is not writable, so results cannot go beside their inputs; use -o")
        return
    folder = output.parent if results == [output] else output
    existing = next(f for f in (folder, *folder.parents) if f.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        raise UsageError(f"{folder}: cannot create output folder ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"{folder}: output folder is not writable ({existing} is read-only)")


def check_output_file(path: Path, suffix: str) -> None:
    """Fail before any work when an output file has the wrong suffix or its folder cannot be made."""
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; name a {suffix} file")
    if path.suffix.lower() != suffix:
        raise UsageError(f"{path}: must be a {suffix} file")
    from colorcli.files import ensure_folder

    ensure_folder(path.parent)
