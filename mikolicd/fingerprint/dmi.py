"""DMI ids: sysfs first (what the kernel decoded), else `dmidecode` text parsed with py-dmidecode."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

from .binding import Hardware
from .placeholders import is_placeholder

SYSFS_LEAF = {"system_uuid": "product_uuid", "system_serial": "product_serial",
              "board_serial": "board_serial", "chassis_serial": "chassis_serial"}
DMI_COMPONENTS = tuple(SYSFS_LEAF)
# component -> (DMI structure type, field)
DMIDECODE_FIELD = {"system_uuid": (1, "UUID"), "system_serial": (1, "Serial Number"),
                   "board_serial": (2, "Serial Number"), "chassis_serial": (3, "Serial Number")}
DMIDECODE_TIMEOUT = 10.0
_EXECUTABLE_MAGIC = (b"\x7fELF", b"#!")


def _indent(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def normalise_dump(text: str) -> str:
    """Rewrite a dump into the exact shape DMIParse's regexes expect.

    Real dumps come with CRLF, space indentation, padded or blank values and `key: value: more` lines;
    DMIParse splits records on `\\n\\n`, wants tabs, and splits a line at its *last* colon. So lines are
    re-indented with tabs by depth, blank runs collapse to one, and each value is percent-encoded: it then
    holds no colon and no blank, and `parse_dump` decodes it back.
    """
    lines = text.splitlines()
    unit = min((_indent(line) for line in lines if line.strip() and _indent(line)), default=8)
    out: list[str] = []
    for line in lines:
        content = line.strip()
        if not content:
            if out and out[-1]:
                out.append("")
            continue
        depth = min(2, (_indent(line) + unit // 2) // unit)
        if depth == 1 and ":" in content:
            key, rest = line.lstrip().split(":", 1)
            value = rest[1:] if rest.startswith(" ") else rest
            out.append(f"\t{key}: {quote(value, safe='')}" if value else f"\t{key}:")
        else:
            out.append("\t" * depth + content)
    return "\n".join(out) + "\n"


def parse_dump(text: str) -> dict[str, str]:
    """The raw DMI ids a dump shows, keyed by component; a component without a record or field is absent."""
    from dmidecode import DMIParse  # compiles its patterns on import; sysfs or the snapshot usually suffice
    parsed = DMIParse(normalise_dump(text))
    found: dict[str, str] = {}
    for name, (dmi_type, key) in DMIDECODE_FIELD.items():
        records = parsed.get(dmi_type)
        value = records[0].get(key) if records else None
        if isinstance(value, str):
            found[name] = unquote(value)
    return found


def read_dmidecode(source: str, timeout: float = DMIDECODE_TIMEOUT) -> tuple[str | None, str]:
    """(text, "") or (None, why): a saved dump is read, anything executable is run without a shell."""
    import shutil  # with subprocess, only when sysfs lacks an id: collect-hardware starts faster without
    import subprocess
    path = Path(source)
    try:
        if path.is_file():
            with path.open("rb") as f:
                data = f.read()
            if not data.startswith(_EXECUTABLE_MAGIC):
                return data.decode("utf-8", "replace"), ""
    except OSError as e:
        return None, f"cannot read {source}: {e.strerror}"
    command = shutil.which(source)
    if command is None:
        return None, f"{source}: command not found"
    try:
        done = subprocess.run([command, "--type", "1,2,3"], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{source} gave no answer within {timeout:g}s"
    except OSError as e:
        return None, f"{source}: {e.strerror}"
    if done.returncode != 0:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:160]
        return None, f"{source} exited with status {done.returncode}" + (f": {last}" if last else "")
    return done.stdout.decode("utf-8", "replace"), ""


def _accept(name: str, raw: str, hw: Hardware) -> None:
    if is_placeholder(raw):
        hw.missing[name] = "placeholder value"
    else:
        hw.values[name] = raw.strip()


def collect_dmi(root: Path, dmidecode: str, wanted: tuple[str, ...] = DMI_COMPONENTS) -> Hardware:
    """Each id from sysfs when the file is readable; the rest from dmidecode, run at most once."""
    hw = Hardware({}, {})
    pending: dict[str, str] = {}
    for name in wanted:
        try:
            raw = (root / "sys/class/dmi/id" / SYSFS_LEAF[name]).read_text(errors="replace")
        except FileNotFoundError:
            pending[name] = "no DMI id in sysfs"
        except PermissionError:
            pending[name] = "DMI id in sysfs needs root (see collect-hardware)"
        except OSError as e:
            pending[name] = f"DMI id in sysfs unreadable: {e.strerror}"
        else:
            _accept(name, raw, hw)
    if not pending:
        return hw
    text, why = read_dmidecode(dmidecode) if dmidecode else (None, "dmidecode not configured")
    found = parse_dump(text) if text is not None else {}
    for name, reason in pending.items():
        if name in found:
            _accept(name, found[name], hw)
        else:
            hw.missing[name] = f"{reason}; {why or 'not in the dmidecode output'}"
    return hw
