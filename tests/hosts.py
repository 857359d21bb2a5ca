"""Fake hardware roots laid out as real hosts lay out sysfs, procfs, udev and /etc.

NICs, disk serials and DMI cannot be conjured on a test machine, so each builder writes the files the
kernel and udev would show, with relative symlinks as sysfs has them. Other tests reuse these roots
through `[hardware] root`.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

VIRTUAL_NET = "sys/devices/virtual/net"
ADDR_PERM, ADDR_RANDOM, ADDR_STOLEN, ADDR_SET = 0, 1, 2, 3  # addr_assign_type
ARPHRD_LOOPBACK, ARPHRD_NONE = 772, 65534  # type


@dataclass
class FakeHost:
    """One fake root; methods add the parts a test needs and return their path under the root (or the host,
    for chaining)."""

    root: Path

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def link(self, rel: str, target: str) -> None:
        """A relative link, so the tree still resolves wherever the root lives."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(os.path.relpath(self.root / target, path.parent))

    def dmi(self, **ids: str) -> FakeHost:
        """sysfs leaf names: product_uuid, product_serial, board_serial, chassis_serial, ..."""
        for leaf, value in ids.items():
            self.write(f"sys/class/dmi/id/{leaf}", value + "\n")
        return self

    def machine_id(self, value: str) -> FakeHost:
        self.write("etc/machine-id", value + "\n")
        return self

    # ------------------------------------------------------------------ network
    def _iface(self, path: str, name: str, mac: str, assign: int, arptype: int) -> str:
        self.write(f"{path}/address", mac + "\n")
        self.write(f"{path}/addr_assign_type", f"{assign}\n")
        self.write(f"{path}/type", f"{arptype}\n")
        self.link(f"sys/class/net/{name}", path)
        return path

    def nic(self, name: str, mac: str, bus: str = "pci0000:00/0000:00:19.0", assign: int = ADDR_PERM) -> str:
        """An Ethernet NIC backed by a device (PCI, virtio, platform, USB): it has a `device` link."""
        path = self._iface(f"sys/devices/{bus}/net/{name}", name, mac, assign, 1)
        self.link(f"{path}/device", f"sys/devices/{bus}")
        return path

    def virtual_nic(self, name: str, mac: str, kind: str = "", assign: int = ADDR_RANDOM, arptype: int = 1) -> str:
        """No `device` link; kind "bridge", "bonding" or "tun_flags" adds the marker sysfs shows."""
        path = self._iface(f"{VIRTUAL_NET}/{name}", name, mac, assign, arptype)
        if kind == "bridge" or kind == "bonding":
            (self.root / path / kind).mkdir()
        elif kind == "tun_flags":
            self.write(f"{path}/tun_flags", "0x1002\n")
        return path

    def bond(self, name: str, slaves: list[str]) -> str:
        """Enslaving rewrites every slave's address to the first one's; the old one survives in perm_hwaddr."""
        net = self.root / "sys/class/net"
        mac = (net / slaves[0] / "address").read_text().strip()
        path = self.virtual_nic(name, mac, kind="bonding", assign=ADDR_STOLEN)
        for slave in slaves:
            perm = (net / slave / "address").read_text().strip()
            self.write(f"sys/class/net/{slave}/bonding_slave/perm_hwaddr", perm + "\n")
            self.write(f"sys/class/net/{slave}/address", mac + "\n")
            self.write(f"sys/class/net/{slave}/addr_assign_type", f"{ADDR_SET}\n")
        return path

    def docker(self, veths: int = 2, networks: int = 1) -> None:
        """docker0, user networks (br-*) and one veth per container, all with made-up addresses."""
        self.virtual_nic("docker0", "02:42:7a:1c:33:01", kind="bridge")
        for i in range(networks):
            self.virtual_nic(f"br-{i:02x}c4d1e9a7b0", f"02:42:9e:{i:02x}:10:02", kind="bridge")
        for i in range(veths):
            self.virtual_nic(f"veth{i:02x}a1b2c", f"6a:3f:{i:02x}:8c:21:4e")

    def remove_nic(self, name: str) -> None:
        link = self.root / "sys/class/net" / name
        shutil.rmtree(link.resolve())
        link.unlink()

    def rename_nic(self, old: str, new: str) -> None:
        """What udev does on a predictable-name change: same device and address, new name."""
        link = self.root / "sys/class/net" / old
        target = link.resolve()
        renamed = target.with_name(new)
        target.rename(renamed)
        link.unlink()
        self.link(f"sys/class/net/{new}", str(renamed.relative_to(self.root.resolve())))

    # ------------------------------------------------------------------ disks
    def disk(self, path: str, devnum: tuple[int, int], partitions: int = 2, serial: str | None = None,
             device: str | None = None, udev: dict[str, str] | None = None, by_id: str | None = None) -> str:
        """A disk at sysfs `path` with numbered partitions; `serial` is the disk's own attribute (virtio),
        `device` the controller or card it links to (which may carry a serial: NVMe, MMC)."""
        major, minor = devnum
        name = path.rsplit("/", 1)[1]
        self.write(f"{path}/dev", f"{major}:{minor}\n")
        if serial is not None:
            self.write(f"{path}/serial", serial + "\n")
        if device is not None:
            self.link(f"{path}/device", device)
        self._block_links(name, path, f"{major}:{minor}")
        self.link(f"sys/block/{name}", path)
        sep = "p" if name[-1].isdigit() else ""
        for i in range(1, partitions + 1):
            part = f"{name}{sep}{i}"
            self.write(f"{path}/{part}/dev", f"{major}:{minor + i}\n")
            self.write(f"{path}/{part}/partition", f"{i}\n")
            self._block_links(part, f"{path}/{part}", f"{major}:{minor + i}")
            if by_id:
                self.link(f"dev/disk/by-id/{by_id}-part{i}", f"dev/{part}")
        if udev:
            self.write(f"run/udev/data/b{major}:{minor}", "".join(f"E:{k}={v}\n" for k, v in udev.items()))
        if by_id:
            self.link(f"dev/disk/by-id/{by_id}", f"dev/{name}")
        return path

    def _block_links(self, name: str, path: str, devnum: str) -> None:
        self.link(f"sys/class/block/{name}", path)
        self.link(f"sys/dev/block/{devnum}", path)

    def device_mapper(self, name: str, devnum: tuple[int, int], slave: str) -> None:
        """An LVM or LUKS volume: a virtual block device whose `slaves` lead to the partition beneath."""
        path = f"sys/devices/virtual/block/{name}"
        self.write(f"{path}/dev", f"{devnum[0]}:{devnum[1]}\n")
        self._block_links(name, path, f"{devnum[0]}:{devnum[1]}")
        target = (self.root / "sys/class/block" / slave).resolve()
        self.link(f"{path}/slaves/{slave}", str(target.relative_to(self.root.resolve())))

    def mount_root(self, devnum: str, fstype: str, source: str) -> FakeHost:
        """proc/self/mountinfo as the kernel writes it, with `/` among the usual pseudo filesystems."""
        self.write("proc/self/mountinfo", "".join([
            "22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n",
            "23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n",
            f"28 1 {devnum} / / rw,relatime shared:1 - {fstype} {source} rw\n",
            "31 28 0:26 / /run rw,nosuid,nodev shared:14 - tmpfs tmpfs rw,mode=755\n",
        ]))
        return self


# ---------------------------------------------------------------------- the fixture hosts
def bare_metal_server(root: Path) -> FakeHost:
    """A 1U server: four onboard NICs (two bonded), Docker with veths and a user bridge, a libvirt bridge,
    root on LVM over NVMe, a SATA data disk."""
    host = FakeHost(root).dmi(
        product_uuid="00000000-0000-0000-0000-0cc47a4b18c0", product_serial="A177950X7709591",
        board_serial="ZM152S007866", chassis_serial="C8150LG15NH0008", sys_vendor="Supermicro")
    for i in range(4):
        host.nic(f"eno{i + 1}", f"0c:c4:7a:4b:18:c{i}", bus=f"pci0000:00/0000:00:1c.{i}/0000:0{i + 1}:00.0")
    host.bond("bond0", ["eno1", "eno2"])
    host.docker(veths=3)
    host.virtual_nic("virbr0", "52:54:00:1d:7e:02", kind="bridge")
    host.virtual_nic("lo", "00:00:00:00:00:00", assign=ADDR_PERM, arptype=ARPHRD_LOOPBACK)
    nvme_ctrl = "sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"
    host.write(f"{nvme_ctrl}/serial", "S4EWNX0R123456K     \n")
    host.disk(f"{nvme_ctrl}/nvme0n1", (259, 0), partitions=3, device=nvme_ctrl,
              udev={"ID_SERIAL_SHORT": "S4EWNX0R123456K", "ID_SERIAL": "Samsung_SSD_970_EVO_S4EWNX0R123456K"},
              by_id="nvme-Samsung_SSD_970_EVO_S4EWNX0R123456K")
    sata = "sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0"
    host.disk(f"{sata}/block/sda", (8, 0), device=sata,
              udev={"ID_SERIAL_SHORT": "WD-WCC4N7PJ1234", "ID_SERIAL": "WDC_WD40EFRX-68N32N0_WD-WCC4N7PJ1234"},
              by_id="ata-WDC_WD40EFRX-68N32N0_WD-WCC4N7PJ1234")
    host.device_mapper("dm-0", (253, 0), slave="nvme0n1p3")
    host.mount_root("253:0", "ext4", "/dev/mapper/pbx-root")
    return host.machine_id("5f1c0a7e9b3d4c2a8e6f10b2c3d4e5f6")


def kvm_guest(root: Path) -> FakeHost:
    """A libvirt guest: QEMU DMI without serials, a virtio disk with a serial set in the domain XML, a virtio
    NIC whose 52:54:00 address is locally administered."""
    host = FakeHost(root).dmi(product_uuid="7061f170-d1cf-6f48-6770-984e8d171011", product_serial="Not Specified",
                              chassis_serial="Not Specified", sys_vendor="QEMU")
    host.nic("enp1s0", "52:54:00:6b:3c:58", bus="pci0000:00/0000:00:02.0/0000:01:00.0/virtio1")
    host.disk("sys/devices/pci0000:00/0000:00:02.3/0000:04:00.0/virtio3/block/vda", (252, 0), serial="pbx-root-7f3a9c",
              udev={"ID_SERIAL": "pbx-root-7f3a9c"}, by_id="virtio-pbx-root-7f3a9c")
    host.mount_root("252:1", "ext4", "/dev/vda1")
    return host.machine_id("0d6e2f3a4b5c46d7a8e9f0a1b2c3d4e5")


def vmware_guest(root: Path) -> FakeHost:
    """An ESXi guest: the serial mirrors the UUID, board and chassis say `None`, a vmxnet3 NIC with a VMware
    OUI address, a PVSCSI disk that reports no serial (disk.EnableUUID off)."""
    host = FakeHost(root).dmi(product_uuid="564dbc2c-0fc9-1f2a-bdd6-7e67436b3541",
                              product_serial="VMware-56 4d bc 2c 0f c9 1f 2a-bd d6 7e 67 43 6b 35 41",
                              board_serial="None", chassis_serial="None", sys_vendor="VMware, Inc.")
    host.nic("ens192", "00:50:56:a1:4f:2e", bus="pci0000:00/0000:00:15.0/0000:0b:00.0")
    scsi = "sys/devices/pci0000:00/0000:00:15.0/0000:03:00.0/host2/target2:0:0/2:0:0:0"
    host.disk(f"{scsi}/block/sda", (8, 0), device=scsi, udev={"ID_PATH": "pci-0000:03:00.0-scsi-0:0:0:0"})
    host.mount_root("8:2", "xfs", "/dev/sda2")
    return host.machine_id("9a8b7c6d5e4f40312a3b4c5d6e7f8091")


def container(root: Path) -> FakeHost:
    """A Docker container: no DMI, overlay root, only a veth end named eth0."""
    host = FakeHost(root)
    host.virtual_nic("lo", "00:00:00:00:00:00", assign=ADDR_PERM, arptype=ARPHRD_LOOPBACK)
    host.virtual_nic("eth0", "02:42:ac:11:00:02")
    host.write("proc/self/mountinfo",
               "612 540 0:52 / / rw,relatime master:307 - overlay overlay rw,lowerdir=/var/lib/docker/l/X\n"
               "613 612 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n")
    return host.machine_id("3c2b1a09f8e7d6c5b4a3928170f6e5d4")


def arm_board(root: Path) -> FakeHost:
    """A single-board computer: no DMI, root on an SD card (`/dev/root` in mountinfo), platform Ethernet and
    an SDIO Wi-Fi with burnt-in addresses."""
    host = FakeHost(root)
    host.nic("eth0", "dc:a6:32:0f:8e:41", bus="platform/scb/fd580000.ethernet")
    host.nic("wlan0", "dc:a6:32:0f:8e:42", bus="platform/soc/fe300000.mmcnr/mmc_host/mmc1/mmc1:0001/mmc1:0001:1")
    card = "sys/devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa"
    host.write(f"{card}/serial", "0x2c9a51d3\n")
    host.disk(f"{card}/block/mmcblk0", (179, 0), device=card)
    host.mount_root("179:2", "ext4", "/dev/root")
    return host.machine_id("e4d3c2b1a0f94e8d7c6b5a4938271605")


HOSTS = {"bare_metal_server": bare_metal_server, "kvm_guest": kvm_guest, "vmware_guest": vmware_guest,
         "container": container, "arm_board": arm_board}


def pbx_box(root: Path, seed: int) -> FakeHost:
    """A plain PBX appliance whose ids all derive from `seed`: many distinct hosts for end-to-end tests."""
    host = FakeHost(root).dmi(product_uuid=f"4c4c4544-00{seed:02x}-3510-8052-b7c04f{seed:06x}",
                              product_serial=f"PBX{seed:07d}", board_serial=f"BRD{seed:07d}",
                              chassis_serial=f"CHS{seed:07d}", sys_vendor="Miko")
    for i in range(2):
        host.nic(f"eth{i}", f"00:1b:21:{seed >> 8 & 0xFF:02x}:{seed & 0xFF:02x}:{i:02x}",
                 bus=f"pci0000:00/0000:00:0{i + 3}.0")
    return host.machine_id(f"{seed:032x}")
