"""Reading this host's identity: snapshot values first (written by root), live reads for the rest."""
from __future__ import annotations

from pathlib import Path

from .binding import COMPONENTS, Hardware
from .dmi import DMI_COMPONENTS, collect_dmi
from .host import collect_disk, collect_machine_id, collect_nics
from .snapshot import read_snapshot

def _live(root: Path, dmidecode: str, wanted: set[str]) -> Hardware:
    """Only the readers for wanted components run, so a full snapshot spares a dmidecode call."""
    parts = []
    if dmi := tuple(n for n in DMI_COMPONENTS if n in wanted):
        parts.append(collect_dmi(root, dmidecode, dmi))
    for name, reader in (("disk_serial", collect_disk), ("nic", collect_nics), ("machine_id", collect_machine_id)):
        if name in wanted:
            parts.append(reader(root))
    return Hardware({k: v for p in parts for k, v in p.values.items()},
                    {k: v for p in parts for k, v in p.missing.items()})


def collect(root: Path, dmidecode: str = "", snapshot: Path | None = None) -> Hardware:
    """Never raises for absent hardware: every component is optional and says why it is missing."""
    base = Hardware({}, {})
    if snapshot is not None:
        try:
            base = read_snapshot(snapshot)
        except (OSError, ValueError) as e:
            import logging  # only then: `mikolicd collect-hardware` starts without the logging machinery
            logging.getLogger("mikolicd.fingerprint").warning("hardware snapshot %s unusable (%s); reading the "
                                                              "hardware live", snapshot, e)
    live = _live(Path(root), dmidecode, set(COMPONENTS) - set(base.values))
    values = {**base.values, **live.values}
    missing = {n: base.missing.get(n, why) for n, why in live.missing.items()}
    return Hardware({n: values[n] for n in COMPONENTS if n in values},
                    {n: missing[n] for n in COMPONENTS if n in missing})
