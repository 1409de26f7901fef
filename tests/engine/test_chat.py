"""`smoltrain chat` and the app's chat server on a short real SFT run of the tiny model.

One run is trained in this process (module fixture); the terminal chat is driven through a
pseudo-terminal and the server over its pipes, both started together so their imports overlap;
compare mode and the user errors run in this process (no model load, or the one already made).
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smoltrain import cli
from smoltrain.config.load import dump_config, load_config
from smoltrain.config.presets import PROJECT_ROOT
from smoltrain.engine import chat_server
from smoltrain.engine.chat import ChatSettings, find_model, load_model
from smoltrain.engine.chat_terminal import Terminal, run_terminal
from smoltrain.errors import ConfigError, ModelError
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow

QUESTION = "What color is the flim?"  # assets/data/sft.jsonl; the tuned model answers "The flim is pink."
CLI = [sys.executable, "-c", "import sys; from smoltrain.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = train_in_process(PROJECT_ROOT / "presets" / "demo-sft.toml", tmp_path_factory.mktemp("chat"),
                           ["train.max_steps=40", "data.eval_fraction=0", "data.max_rows=256", "train.save_steps=1000",
                            "train.logging_steps=10", "train.compare_prompts=0"])  # fmt: skip (no before/after: seconds)
    assert run.exit_code == 0
    losses = run.losses()
    assert losses[-1] < 0.5 * losses[0], f"training loss did not fall: {losses}"
    assert (run.run_dir / "final" / "adapter_config.json").is_file()
    return run.run_dir


class Pty:
    """A child process on a pseudo-terminal: what a person at a terminal sees and types."""

    def __init__(self, args: list[str], columns: int = 120) -> None:
        import fcntl
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env = {**os.environ, "TERM": "dumb", "NO_COLOR": "1", "COLUMNS": str(columns)}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.master, self.seen = master, ""

    def read_until(self, text: str, timeout: float = 60) -> str:
        """Everything shown until `text` appears (after what earlier reads returned)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} on the terminal; it shows:\n{self.seen}"
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace").replace("\r\n", "\n")
                except OSError:  # the child closed the terminal
                    assert text in self.seen, f"no {text!r} on the terminal; it shows:\n{self.seen}"
        shown, _, self.seen = self.seen.partition(text)
        return shown

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\r").encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture(scope="module")
def children(run_dir):
    """The terminal chat and the chat server, started together: on CI's two cores their imports overlap."""
    chat = Pty([*CLI, "chat", str(run_dir), "--temperature", "0"])
    server = subprocess.Popen([sys.executable, "-m", "smoltrain.engine.chat_server", str(run_dir)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    yield chat, server
    chat.close()
    if server.poll() is None:
        server.kill()
    server.wait()
    for pipe in (server.stdin, server.stdout, server.stderr):
        if pipe is not None:
            pipe.close()


def test_terminal_chat_answers_and_obeys_its_commands(children):
    term, _ = children
    term.read_until("you> ")
    term.type(QUESTION)
    answer = term.read_until("you> ")
    assert "tuned> The flim is pink." in answer, answer

    term.type("/help")
    shown = term.read_until("you> ")
    for command in ("/temperature", "/top_p", "/max_new_tokens", "/system", "/reset", "/compare", "/help", "/quit"):
        assert command in shown
    term.type("/temperature 0")
    term.read_until("you> ")
    term.type("/max_new_tokens 5")
    assert "max_new_tokens 5" in term.read_until("you> ")
    term.type("Tell me about the flim.")
    short = term.read_until("you> ").split("tuned> ", 1)[1].strip()
    assert 0 < len(short) <= 30 and len(short.split()) <= 5, short
    term.type("/reset")
    assert "conversation cleared" in term.read_until("you> ")
    term.type("/quit")
    assert term.proc.wait(timeout=30) == 0


def test_server_streams_both_answers_and_survives_a_bad_request(children):
    _, server = children
    assert server.stdin is not None and server.stdout is not None
    ready = json.loads(server.stdout.readline())
    assert ready["ready"] is True and ready["device"] == "cpu" and " + " in ready["model"]

    server.stdin.write("this is not json\n")
    server.stdin.write(json.dumps({"id": 7, "prompt": QUESTION, "temperature": 0, "max_new_tokens": 40}) + "\n")
    server.stdin.flush()
    bad = json.loads(server.stdout.readline())
    assert bad["id"] is None and "not JSON" in bad["error"]
    pieces: dict[str, list[str]] = {"base": [], "tuned": []}
    order = []
    while "done" not in (message := json.loads(server.stdout.readline())):
        assert message["id"] == 7
        pieces[message["which"]].append(message["text"])
        order.append(message["which"])
    assert order == sorted(order)  # base first, then tuned
    assert message["id"] == 7 and message["tuned"] == "".join(pieces["tuned"]) == "The flim is pink."
    assert message["base"] == "".join(pieces["base"]) != message["tuned"]

    server.stdin.write(json.dumps({"id": 8, "prompt": QUESTION, "top_p": 3}) + "\n")
    server.stdin.flush()
    assert json.loads(server.stdout.readline()) == {"id": 8, "error": "top_p 3: must be above 0 and at most 1"}
    server.stdin.close()
    assert server.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_model(find_model(run_dir))


def test_compare_on_a_pipe_answers_with_base_then_tuned(run_dir, loaded, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTION + "\n"))
    code = cli.main(["chat", str(run_dir), "--compare", "--temperature", "0", "--max-new-tokens", "40"])
    out = capsys.readouterr().out
    assert code == 0
    base = out.split("base> ", 1)[1].split("tuned> ", 1)[0].strip()
    tuned = out.split("tuned> ", 1)[1].strip()
    assert tuned == "The flim is pink." and base and base != tuned


class _Screen(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_compare_in_a_wide_terminal_shows_two_columns(loaded, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    screen = _Screen()
    settings = ChatSettings(temperature=0, max_new_tokens=40, compare=True)
    assert run_terminal(loaded, settings, Terminal(io.StringIO(f"{QUESTION}\n/compare\n/reset\n{QUESTION}\n"), screen)) == 0
    shown = screen.getvalue()
    table = shown.rsplit("\r", 1)[1]  # after the status line the answers were generated on
    head, rule, *rows = table.split("\nyou> ")[0].splitlines()
    assert head.split("│") == ["base".ljust(48) + " ", " tuned"] and "┼" in rule
    base, tuned = ([row.split("│")[i].strip() for row in rows] for i in (0, 1))
    assert " ".join(tuned).strip() == "The flim is pink." and " ".join(base).strip() not in ("", "The flim is pink.")
    assert all(len(row) <= 100 for row in rows)
    assert "compare off" in shown and shown.rstrip().endswith("tuned> The flim is pink.")


def _error_lines(capsys, argv: list[str]) -> list[str]:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("  hint: "), captured.err
    return lines


def _fake_run(folder: Path, preset: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(dump_config(load_config(PROJECT_ROOT / "presets" / preset)))
    return folder


def test_bad_inputs_are_one_line_user_errors(run_dir, tmp_path, capsys):
    assert "not a run folder" in _error_lines(capsys, ["chat", str(tmp_path)])[0]
    assert "smoltrain chat " + str(run_dir) in _error_lines(capsys, ["chat", str(run_dir / "final")])[1]
    stopped = _fake_run(tmp_path / "stopped", "demo-sft.toml")
    error, hint = _error_lines(capsys, ["chat", str(stopped)])
    assert "no trained model" in error and f"smoltrain resume {stopped}" in hint
    error, hint = _error_lines(capsys, ["chat", str(run_dir), "--stage", "nope"])
    assert "--stage nope" in error and "not a pipeline" in error
    reward = _fake_run(tmp_path / "reward", "demo-reward.toml")
    assert "reward model" in _error_lines(capsys, ["chat", str(reward)])[0]
    assert "--temperature" in _error_lines(capsys, ["chat", str(run_dir), "--temperature", "-1"])[0]

    assert chat_server.main([str(tmp_path)]) == 2
    said = json.loads(capsys.readouterr().out)
    assert "not a run folder" in said["error"] and said["hint"]


def test_pipeline_stages_are_named_and_found_where_the_run_is(run_dir, tmp_path):
    pipeline = _fake_run(tmp_path / "pipeline", "demo.toml")
    with pytest.raises(ConfigError, match="no stage of that name") as unknown:
        find_model(pipeline, "nope")
    assert unknown.value.hint == "its stages: sft, reward, dpo, grpo"
    with pytest.raises(ModelError, match="stage reward of .* reward model") as reward:
        find_model(pipeline, "reward")
    assert reward.value.hint == "chat with a policy stage instead: --stage grpo"
    with pytest.raises(ModelError, match="no trained model"):
        find_model(pipeline)

    shutil.copytree(run_dir / "final", pipeline / "stages" / "sft" / "final")
    (pipeline / "stages" / "sft" / "merged").mkdir()
    with pytest.raises(ModelError) as not_yet:
        find_model(pipeline)
    assert not_yet.value.hint.endswith("or chat with a finished stage: --stage sft")
    sft = find_model(pipeline, "sft")
    assert sft.label == "sft" and sft.base == str(PROJECT_ROOT / "assets" / "tiny-llama")
    # DPO trained on SFT's merged model, recorded where the run was before it was moved here.
    dpo = pipeline / "stages" / "dpo" / "final"
    shutil.copytree(run_dir / "final", dpo)
    adapter = json.loads((dpo / "adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = "/elsewhere/runs/old/stages/sft/merged"
    (dpo / "adapter_config.json").write_text(json.dumps(adapter))
    assert find_model(pipeline, "dpo").base == str(pipeline / "stages" / "sft" / "merged")


def test_a_base_model_not_available_offline_is_a_user_error(run_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "hub-run"
    shutil.copytree(run_dir / "final", run / "final")
    cfg = load_config(run_dir / "config.toml")
    cfg.model.name_or_path = "someorg/not-cached-model"
    (run / "config.toml").write_text(dump_config(cfg))
    adapter = json.loads((run / "final" / "adapter_config.json").read_text())
    (run / "final" / "adapter_config.json").write_text(json.dumps({**adapter, "base_model_name_or_path": "someorg/not-cached-model"}))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at start-up: no network tried
    error, hint = _error_lines(capsys, ["chat", str(run)])
    assert "'someorg/not-cached-model': not in the local Hugging Face cache" in error and "hf download" in hint
