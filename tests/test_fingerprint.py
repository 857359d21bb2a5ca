"""The host fingerprint: what is read from real dumps and fake hardware roots, and when a binding holds."""
from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikolicd.fingerprint import (COMPONENTS, STRONG, Hardware, collect, components, keyed_hash, match,
                                  read_snapshot, write_snapshot)
from mikolicd.fingerprint.dmi import parse_dump, read_dmidecode

from hosts import (ADDR_PERM, ADDR_RANDOM, ARPHRD_NONE, HOSTS, FakeHost, arm_board, bare_metal_server, container,
                   kvm_guest)

DUMPS = Path(__file__).resolve().parent / "fixtures" / "dmidecode"  # real dumps; sources in SOURCES.md
EXPECTED = json.loads((DUMPS / "expected.json").read_text())
DMI = ("system_uuid", "system_serial", "board_serial", "chassis_serial")
# What the dumps print where a vendor left no real id (or an anonymiser removed it).
PLACEHOLDERS_IN_DUMPS = {"--", " ", "None", "Not Specified", "System Serial Number", "Chassis Serial Number",
                         "XXXXXXXXXX", "0123456789", "42", "EEEEEEEE-EEEE-EEEE-EEEE-EEEEEEEEEEEE",
                         "00000000-0000-0000-0000-000000000000", "12345678-1234-5678-90AB-CDDEEFAABBCC"}


def dump_text(name: str) -> str:
    """Bytes as stored, so CRLF and padding reach the parser untouched."""
    return (DUMPS / name).read_bytes().decode()


def build(tmp_path: Path, builder) -> FakeHost:
    return builder(tmp_path / "host")


def fingerprint(host: FakeHost) -> dict:
    return components(collect(host.root))


# ---------------------------------------------------------------------- real dmidecode dumps
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_dump_parses_to_exactly_what_it_shows(name: str) -> None:
    found = parse_dump(dump_text(name))
    assert {k: found.get(k) for k in DMI} == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_dump_yields_real_ids_and_treats_placeholders_as_missing(name: str, tmp_path: Path) -> None:
    hw = collect(tmp_path, str(DUMPS / name))
    for component, shown in EXPECTED[name].items():
        if shown is None:
            assert component in hw.missing and component not in hw.values
        elif shown in PLACEHOLDERS_IN_DUMPS:
            assert hw.missing[component] == "placeholder value"
        else:
            assert hw.values[component] == shown.strip()


def test_dumps_of_the_same_host_from_sysfs_and_dmidecode_hash_alike(tmp_path: Path) -> None:
    """sysfs prints the UUID in lower case, dmidecode in upper case; the binding must not care."""
    host = FakeHost(tmp_path / "sysfs").dmi(product_uuid="4c4c4544-0052-4a10-8046-b2c04f313533",
                                            product_serial="2RJF153", board_serial=".2RJF153.CNIVC0005G0184.",
                                            chassis_serial="2RJF153")
    from_sysfs = components(collect(host.root))
    from_dump = components(collect(tmp_path / "bare", str(DUMPS / "server-dell-r640.txt")))
    assert {k: from_sysfs[k] for k in DMI} == {k: from_dump[k] for k in DMI}


def test_dump_with_crlf_space_indent_padding_and_extra_colons_reads_right() -> None:
    dump = ("# dmidecode 3.2\r\nSMBIOS 2.7 present.\r\n\r\n\r\n"
            "Handle 0x0001, DMI type 1, 27 bytes   \r\nSystem Information\r\n"
            "  Manufacturer: Acme: Telecom Division\r\n  Serial Number: PBX:2024: 0042   \r\n"
            "  UUID: 1B2C3D4E-5F60-7182-93A4-B5C6D7E8F901\r\n\r\n"
            "Handle 0x0002, DMI type 2, 15 bytes\r\nBase Board Information\r\n"
            "  Features:\r\n    Board is a hosting board\r\n  Serial Number: \r\n\r\n")
    assert parse_dump(dump) == {"system_uuid": "1B2C3D4E-5F60-7182-93A4-B5C6D7E8F901",
                                "system_serial": "PBX:2024: 0042   "}


def test_dump_without_system_board_or_chassis_records_gives_missing_ids(tmp_path: Path) -> None:
    dump = tmp_path / "bios-only.txt"
    dump.write_text("Handle 0x0000, DMI type 0, 24 bytes\nBIOS Information\n\tVendor: Acme\n\tVersion: 1.0\n")
    hw = collect(tmp_path / "root", str(dump))
    assert set(DMI) <= set(hw.missing) and not set(DMI) & set(hw.values)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("Handle 0x1, DMI type 1, 9 bytes\n\r\t :UUIDSerial Number-Ab9")))
def test_dump_parser_never_raises_on_arbitrary_text(text: str) -> None:
    assert set(parse_dump(text)) <= set(DMI)


# ---------------------------------------------------------------------- dmidecode as a command
def fake_command(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "dmidecode"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_dmidecode_command_output_is_parsed(tmp_path: Path) -> None:
    command = fake_command(tmp_path, f"exec cat '{DUMPS / 'laptop-lenovo-thinkpad.txt'}'")
    hw = collect(tmp_path / "root", str(command))
    assert hw.values["system_serial"] == "LR9NKZ7" and hw.values["board_serial"] == "1ZJJC21G0N6"


def test_failing_dmidecode_command_means_missing_with_its_exit_status(tmp_path: Path) -> None:
    command = fake_command(tmp_path, "echo '/dev/mem: Permission denied' >&2; exit 1")
    hw = collect(tmp_path / "root", str(command))
    assert "exited with status 1: /dev/mem: Permission denied" in hw.missing["system_uuid"]


def test_absent_dmidecode_command_means_missing_with_reason(tmp_path: Path) -> None:
    hw = collect(tmp_path, "mikolicd-test-no-such-dmidecode")
    assert "command not found" in hw.missing["system_serial"]


def test_hung_dmidecode_command_is_given_up(tmp_path: Path) -> None:
    text, why = read_dmidecode(str(fake_command(tmp_path, "exec sleep 30")), timeout=0.3)
    assert text is None and "no answer" in why


def test_readable_sysfs_dmi_wins_over_dmidecode(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "root").dmi(product_serial="SYSFS-SERIAL-1")
    dump = tmp_path / "dump.txt"
    dump.write_text("Handle 0x0001, DMI type 1, 27 bytes\nSystem Information\n\tSerial Number: DUMP-SERIAL-2\n"
                    "\tUUID: 1B2C3D4E-5F60-7182-93A4-B5C6D7E8F901\n")
    hw = collect(host.root, str(dump))
    assert hw.values["system_serial"] == "SYSFS-SERIAL-1"
    assert hw.values["system_uuid"] == "1B2C3D4E-5F60-7182-93A4-B5C6D7E8F901"


# ---------------------------------------------------------------------- fixture hosts
def test_bare_metal_server_reads_dmi_root_nvme_behind_lvm_and_four_permanent_macs(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, bare_metal_server).root)
    assert hw.values == {
        "system_uuid": "00000000-0000-0000-0000-0cc47a4b18c0", "system_serial": "A177950X7709591",
        "board_serial": "ZM152S007866", "chassis_serial": "C8150LG15NH0008", "disk_serial": "S4EWNX0R123456K",
        "nic": ("0c:c4:7a:4b:18:c0", "0c:c4:7a:4b:18:c1", "0c:c4:7a:4b:18:c2", "0c:c4:7a:4b:18:c3"),
        "machine_id": "5f1c0a7e9b3d4c2a8e6f10b2c3d4e5f6"}


def test_kvm_guest_binds_on_uuid_and_virtio_serial_not_its_locally_administered_mac(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, kvm_guest).root)
    assert hw.values["system_uuid"] == "7061f170-d1cf-6f48-6770-984e8d171011"
    assert hw.values["disk_serial"] == "pbx-root-7f3a9c"
    assert hw.missing["system_serial"] == "placeholder value" and "nic" in hw.missing


def test_vmware_guest_binds_on_uuid_serial_and_vmxnet_mac(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, HOSTS["vmware_guest"]).root)
    assert {n for n in STRONG if n in hw.values} == {"system_uuid", "system_serial", "nic"}
    assert hw.missing["board_serial"] == hw.missing["chassis_serial"] == "placeholder value"
    assert hw.missing["disk_serial"] == "disk sda reports no serial"


def test_container_has_only_its_machine_id(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, container).root)
    assert hw.values == {"machine_id": "3c2b1a09f8e7d6c5b4a3928170f6e5d4"}
    assert hw.missing["disk_serial"] == "root filesystem (overlay) is not on a block device"


def test_arm_board_without_dmi_binds_on_sd_card_serial_and_macs(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, arm_board).root)
    assert hw.values["disk_serial"] == "0x2c9a51d3"
    assert hw.values["nic"] == ("dc:a6:32:0f:8e:41", "dc:a6:32:0f:8e:42")
    assert not set(DMI) & set(hw.values)


def test_root_on_btrfs_is_found_through_the_mount_source(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    host.mount_root("0:31", "btrfs", "/dev/sda1")
    assert collect(host.root).values["disk_serial"] == "WD-WCC4N7PJ1234"


def test_disk_without_serial_or_udev_serial_is_named_by_its_by_id_link(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "root")
    host.disk("sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda", (8, 0),
              by_id="ata-ST1000DM010-2EP102_Z9A1B2C3")
    host.mount_root("8:1", "ext4", "/dev/sda1")
    assert collect(host.root).values["disk_serial"] == "ata-ST1000DM010-2EP102_Z9A1B2C3"


def test_qemu_default_disk_serial_is_a_placeholder(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "root")
    host.disk("sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", (8, 0),
              udev={"ID_SERIAL_SHORT": "QM00001", "ID_SERIAL": "QEMU_HARDDISK_QM00001"})
    host.mount_root("8:1", "ext4", "/dev/sda1")
    assert collect(host.root).missing["disk_serial"] == "placeholder value"


def test_missing_reasons_never_repeat_a_raw_placeholder(tmp_path: Path) -> None:
    reasons = [why for b in HOSTS.values() for why in collect(b(tmp_path / b.__name__).root).missing.values()]
    raw = {"none", "not specified", "qm00001", "00:00:00:00:00:00"}
    assert reasons and not [r for r in reasons if any(p in r.lower() for p in raw)]


# ---------------------------------------------------------------------- stability
def test_docker_veth_and_bridges_coming_and_going_change_nothing(tmp_path: Path) -> None:
    host = build(tmp_path, kvm_guest)
    host.nic("ens3", "00:16:3e:5a:11:02", bus="pci0000:00/0000:00:03.0")
    before = fingerprint(host)
    host.docker(veths=4, networks=3)
    host.virtual_nic("virbr0", "52:54:00:aa:bb:01", kind="bridge")
    assert fingerprint(host) == before
    for name in ("docker0", "veth00a1b2c", "br-00c4d1e9a7b0", "virbr0"):
        host.remove_nic(name)
    assert fingerprint(host) == before


def test_renamed_interfaces_change_nothing(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    before = fingerprint(host)
    host.rename_nic("eno3", "enp3s0f0")
    host.rename_nic("eno4", "eth7")
    assert fingerprint(host) == before


def test_interfaces_listed_in_another_order_give_the_same_fingerprint(tmp_path: Path) -> None:
    macs = ["00:1b:21:3a:4f:01", "00:1b:21:3a:4f:02", "00:1b:21:3a:4f:03"]
    forward, backward = FakeHost(tmp_path / "a"), FakeHost(tmp_path / "b")
    for i, mac in enumerate(macs):
        forward.nic(f"eth{i}", mac, bus=f"pci0000:00/0000:00:0{i}.0")
    for i, mac in reversed(list(enumerate(macs))):
        backward.nic(f"enp{9 - i}s0", mac, bus=f"pci0000:00/0000:00:1{i}.0")
    assert collect(forward.root).values["nic"] == collect(backward.root).values["nic"]
    assert fingerprint(forward) == fingerprint(backward)


def test_random_and_locally_administered_addresses_are_ignored(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    before = fingerprint(host)
    host.nic("wlp2s0", "00:21:6a:10:20:30", bus="pci0000:00/0000:00:1c.7/0000:02:00.0", assign=ADDR_RANDOM)
    host.nic("enx020000aabbcc", "02:00:00:aa:bb:cc", bus="pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0")
    host.virtual_nic("wg0", "00:00:00:00:00:00", assign=ADDR_PERM, arptype=ARPHRD_NONE)
    host.virtual_nic("tap0", "6e:11:22:33:44:55", kind="tun_flags")
    assert fingerprint(host) == before


def test_interfaces_without_a_device_are_ignored_even_with_a_global_address(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    before = fingerprint(host)
    host.virtual_nic("ext0", "00:16:3e:12:34:56", assign=ADDR_PERM)
    host.virtual_nic("eno3.100", "0c:c4:7a:4b:18:c2", assign=ADDR_PERM)
    assert fingerprint(host) == before


def test_bonded_nics_are_known_by_their_permanent_addresses(tmp_path: Path) -> None:
    plain = FakeHost(tmp_path / "plain")
    bonded = FakeHost(tmp_path / "bonded")
    for host in (plain, bonded):
        host.nic("eno1", "3c:ec:ef:10:00:01", bus="pci0000:00/0000:00:1c.0")
        host.nic("eno2", "3c:ec:ef:10:00:02", bus="pci0000:00/0000:00:1c.1")
    bonded.bond("bond0", ["eno1", "eno2"])
    assert collect(bonded.root).values["nic"] == collect(plain.root).values["nic"]


# ---------------------------------------------------------------------- tolerance
def test_one_replaced_nic_still_holds_with_nic_changed(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    bound = fingerprint(host)
    host.remove_nic("eno4")
    host.nic("eno4", "a0:36:9f:52:77:10", bus="pci0000:00/0000:00:1c.3/0000:04:00.0")
    result = match(bound, fingerprint(host))
    assert result.holds and result.status["nic"] == "changed"
    assert [n for n, s in result.status.items() if s != "match"] == ["nic"]


def test_one_replaced_disk_still_holds_with_disk_changed(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    bound = fingerprint(host)
    host.write("sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/serial", "S5GXNF0N998877A\n")
    host.write("run/udev/data/b259:0", "E:ID_SERIAL_SHORT=S5GXNF0N998877A\n")
    result = match(bound, fingerprint(host))
    assert result.holds and result.status["disk_serial"] == "changed"


def test_one_replaced_board_serial_still_holds_with_board_changed(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    bound = fingerprint(host)
    host.dmi(board_serial="ZM163S012345")
    result = match(bound, fingerprint(host))
    assert result.holds and result.status["board_serial"] == "changed"
    assert (result.matched, result.required) == (5, 5)


def test_two_replaced_strong_components_do_not_hold(tmp_path: Path) -> None:
    host = build(tmp_path, bare_metal_server)
    bound = fingerprint(host)
    host.dmi(board_serial="ZM163S012345")
    host.remove_nic("eno4")
    result = match(bound, fingerprint(host))
    assert not result.holds and result.status["board_serial"] == result.status["nic"] == "changed"


def test_component_gone_since_binding_counts_as_missing(tmp_path: Path) -> None:
    host = build(tmp_path, kvm_guest)
    bound = fingerprint(host)
    (host.root / "sys/devices/pci0000:00/0000:00:02.3/0000:04:00.0/virtio3/block/vda/serial").write_text("\n")
    (host.root / "run/udev/data/b252:0").unlink()
    (host.root / "dev/disk/by-id/virtio-pbx-root-7f3a9c").unlink()
    result = match(bound, fingerprint(host))
    assert not result.holds and result.status["disk_serial"] == "missing"


def test_component_appearing_after_binding_is_unbound_and_harmless(tmp_path: Path) -> None:
    host = build(tmp_path, kvm_guest)
    bound = fingerprint(host)
    host.nic("ens3", "00:16:3e:5a:11:02", bus="pci0000:00/0000:00:03.0")
    result = match(bound, fingerprint(host))
    assert result.holds and result.status["nic"] == "unbound"


def test_container_binds_on_its_machine_id_and_says_it_is_degraded(tmp_path: Path) -> None:
    host = build(tmp_path, container)
    bound = fingerprint(host)
    same = match(bound, fingerprint(host))
    host.machine_id("7e6d5c4b3a2910f8e7d6c5b4a3928170")
    moved = match(bound, fingerprint(host))
    assert same.holds and same.degraded and same.summary()["degraded"] is True
    assert not moved.holds and moved.status["machine_id"] == "changed"


def test_host_with_two_strong_components_needs_both(tmp_path: Path) -> None:
    host = build(tmp_path, arm_board)
    bound = fingerprint(host)
    host.write("sys/devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/serial", "0x7711beef\n")
    result = match(bound, fingerprint(host))
    assert not result.holds and not result.degraded and result.required == 2


def test_empty_binding_never_holds() -> None:
    assert not match({}, {"machine_id": keyed_hash("3c2b1a09f8e7d6c5b4a3928170f6e5d4")}).holds


# ---------------------------------------------------------------------- uniqueness and privacy
def test_fixture_hosts_all_have_different_fingerprints_and_refuse_each_others_bindings(tmp_path: Path) -> None:
    prints = {name: fingerprint(b(tmp_path / name)) for name, b in HOSTS.items()}
    assert len({json.dumps(p, sort_keys=True) for p in prints.values()}) == len(HOSTS)
    accepted = [(a, b) for a in prints for b in prints if a != b and match(prints[a], prints[b]).holds]
    assert accepted == []


def test_components_leave_the_host_only_as_keyed_hashes(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, bare_metal_server).root)
    sent = json.dumps(components(hw)).lower()
    raw = [v for value in hw.values.values() for v in (value if isinstance(value, tuple) else (value,))]
    assert not [v for v in raw if v.lower() in sent]
    assert components(hw)["system_serial"] == keyed_hash("  a177950x7709591 ")


# ---------------------------------------------------------------------- the root-only snapshot
def test_snapshot_round_trips_raw_values_in_a_0600_file(tmp_path: Path) -> None:
    hw = collect(build(tmp_path, bare_metal_server).root)
    path = tmp_path / "hardware.json"
    write_snapshot(hw, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_snapshot(path) == hw
    assert set(json.loads(path.read_text())) == {"values", "missing"}


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_snapshot_is_handed_to_the_owner_of_its_directory(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    write_snapshot(Hardware({"machine_id": "3c2b1a09f8e7d6c5b4a3928170f6e5d4"}, {}), directory / "hw.json")
    assert (directory / "hw.json").stat().st_uid == 65534


def test_snapshot_values_are_used_and_live_reads_fill_the_rest(tmp_path: Path) -> None:
    host = build(tmp_path, arm_board)
    path = tmp_path / "hardware.json"
    write_snapshot(Hardware({"system_uuid": "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901", "nic": ("00:1b:21:00:00:01",)},
                            {"board_serial": "placeholder value"}), path)
    hw = collect(host.root, snapshot=path)
    assert hw.values["system_uuid"] == "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
    assert hw.values["nic"] == ("00:1b:21:00:00:01",)
    assert hw.values["disk_serial"] == "0x2c9a51d3"
    assert hw.missing["board_serial"] == "placeholder value"
    assert set(hw.values) | set(hw.missing) == set(COMPONENTS)


@pytest.mark.parametrize("content", ["{not json", '{"values": []}', '{"values": {"cpu": "x"}, "missing": {}}',
                                     '{"values": {"nic": [1, 2]}, "missing": {}}'])
def test_unusable_snapshot_is_reported_and_the_hardware_read_live(tmp_path: Path, content: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    host = build(tmp_path, arm_board)
    path = tmp_path / "hardware.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="mikolicd.fingerprint"):
        hw = collect(host.root, snapshot=path)
    assert hw == collect(host.root)
    assert "hardware snapshot" in caplog.text and "reading the hardware live" in caplog.text


def test_absent_snapshot_is_reported_and_the_hardware_read_live(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    host = build(tmp_path, kvm_guest)
    with caplog.at_level(logging.WARNING, logger="mikolicd.fingerprint"):
        hw = collect(host.root, snapshot=tmp_path / "absent.json")
    assert hw.values["disk_serial"] == "pbx-root-7f3a9c" and "absent.json" in caplog.text
