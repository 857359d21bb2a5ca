"""No command shows a traceback: closed pipes, interrupted prompts and file-system errors end with at most
one line and the documented exit code (docs/mikolicctl.md)."""
from __future__ import annotations

import os
import socket

import pytest

from agentproc import box_agent, running
from cliproc import Terminal, one_line, run, with_stdout_closed
from hosts import pbx_box
from mikolicd import exits, instance, main


@pytest.fixture(scope="module")
def agent(tmp_path_factory, refserver):
    with running(box_agent(tmp_path_factory.mktemp("exits"), refserver, 6161)) as agent:
        yield agent


@pytest.mark.parametrize("command", [["status"], ["fingerprint"], ["--help"], ["status", "--help"], ["doctor"]])
def test_a_closed_stdout_ends_silently_with_141(agent, command):
    extra = ["--config", str(agent.config)] if command == ["doctor"] else []
    done = with_stdout_closed("mikolicctl", "--socket", agent.sock, *command, *extra)
    assert done.returncode == exits.PIPE_CLOSED
    assert done.stderr == ""


def test_status_piped_into_head_shows_no_traceback(agent):
    done = run("bash", "-c", f'mikolicctl --socket "{agent.sock}" status | head -1; echo "${{PIPESTATUS[0]}}"')
    first, code = done.stdout.splitlines()
    assert first.startswith("state:") and int(code) in (exits.OK, exits.PIPE_CLOSED)
    assert done.stderr == ""


def test_mikolicd_help_into_a_closed_pipe_ends_with_141():
    done = with_stdout_closed("mikolicd", "--help")
    assert done.returncode == exits.PIPE_CLOSED and done.stderr == ""


@pytest.mark.parametrize(("given", "prompt", "key"), [((), "Company name: ", b"\x03"),
                                                    (("--company", "Example LLC"), "E-mail address: ", b"\x04")],
                         ids=["ctrl-c", "ctrl-d"])
def test_an_interrupted_register_prompt_ends_with_130_and_sends_nothing(tmp_path, given, prompt, key):
    with Terminal.start("mikolicctl", "--socket", tmp_path / "none.sock", "register", *given) as term:
        term.expect(prompt)
        term.send(key)
        assert term.wait() == exits.INTERRUPTED
    assert "register cancelled at the prompt: nothing was sent" in term.output
    assert "Traceback" not in term.output


def test_collect_hardware_into_a_missing_directory_names_it_and_exits_4(tmp_path):
    config = tmp_path / "mikolicd.toml"
    config.write_text(f'[hardware]\nroot = "{pbx_box(tmp_path / "hw", 3).root}"\ndmidecode = ""\n')
    target = tmp_path / "nonexistent" / "hw.json"
    done = run("mikolicd", "collect-hardware", "--config", config, "--output", target)
    assert done.returncode == exits.FILE_ERROR
    assert one_line(done.stderr) == (f"mikolicd: collect-hardware: cannot write the snapshot {target}: No such file "
                                     f"or directory; create the directory {target.parent} first, or choose another "
                                     "path")


def test_dev_with_a_file_as_directory_exits_4(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("")
    done = run("mikolicd", "dev", "--dir", file)
    assert done.returncode == exits.FILE_ERROR
    assert f"--dir {file} is a file, not a directory" in one_line(done.stderr)


def test_dev_with_a_directory_that_cannot_be_created_exits_4():
    done = run("mikolicd", "dev", "--dir", "/proc/nope")
    assert done.returncode == exits.FILE_ERROR
    assert one_line(done.stderr).startswith("mikolicd: dev: cannot create the directory /proc/nope: ")


def test_a_second_dev_setup_in_one_directory_is_refused_naming_the_pid_before_touching_anything(short_dir):
    config = short_dir / "mikolicd.toml"
    config.write_text("# the running setup's configuration\n")
    held = instance.acquire(short_dir / "state", short_dir / "mikolicd.sock")
    try:
        done = run("mikolicd", "dev", "--dir", short_dir)
    finally:
        held.release()
    assert done.returncode == exits.FAILED
    assert f"another mikolicd (pid {os.getpid()}) already runs on" in one_line(done.stderr)
    assert config.read_text() == "# the running setup's configuration\n"
    assert not (short_dir / "server.log").exists()


def test_a_stale_socket_exits_3_saying_so(short_dir):
    path = short_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # closed without unlinking: what an agent killed with -9 leaves
    done = run("mikolicctl", "--socket", path, "status")
    assert done.returncode == exits.UNREACHABLE
    assert "is a stale socket: no agent accepts connections on it" in one_line(done.stderr)


def test_a_wrong_option_exits_2_with_the_usage():
    done = run("mikolicctl", "status", "--no-such-option")
    assert done.returncode == exits.USAGE and "Traceback" not in done.stderr
    assert "unrecognized arguments: --no-such-option" in done.stderr


def test_output_into_a_missing_directory_exits_4_and_asks_nothing(tmp_path):
    target = tmp_path / "missing" / "request.txt"
    done = run("mikolicctl", "--socket", tmp_path / "none.sock", "offline", "request", "--output", target)
    assert done.returncode == exits.FILE_ERROR
    assert one_line(done.stderr).startswith(f"mikolicctl: cannot write the offline request {target}: ")


def test_dev_without_its_extras_says_what_to_install_before_creating_anything(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(main, "DEV_NEEDS", ("aiohttp", "mikolicd_extra_that_is_not_installed"))
    assert main.main(["dev", "--dir", str(tmp_path / "dev")]) == exits.FAILED
    line = one_line(capsys.readouterr().err)
    assert line.startswith("mikolicd: dev needs mikolicd_extra_that_is_not_installed")
    assert "pip install -e '.[dev]'" in line
    assert not (tmp_path / "dev").exists()
