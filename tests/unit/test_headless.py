"""The headless printer: what a user sees in a terminal or a log for a stream of events."""

from __future__ import annotations

import io

from smoltrain.engine import events as ev
from smoltrain.headless import Printer
from smoltrain.runstate import format_duration


def render(events: list, tty: bool) -> str:
    out = io.StringIO()
    printer = Printer(out, tty=tty)
    for event in events:
        printer.render(event)
    return out.getvalue()


STREAM = [
    ev.RunStarted(run_dir="/r", name="demo", model="tiny", device="cpu", dtype="float32", stages=["sft"],
                  active={"4bit": "on (nf4, double quant)", "liger": "off: no CUDA"}, trainable_params=5, total_params=50),
    ev.StageStarted(stage=0, technique="sft", max_steps=4, train_rows=9, eval_rows=1, data="sft.jsonl: 10 rows read, 10 kept"),
    ev.Metrics(step=1, max_steps=4, loss=2.0, tokens_per_second=1234.5, memory_rss_gb=1.2),
    ev.Eval(step=2, max_steps=4, eval_loss=1.5, eval_runtime=0.3),
    ev.Warning(message="gradient norm 500", hint="lower the learning rate", step=3),
    ev.Metrics(step=4, max_steps=4, loss=1.0),
    ev.RunFinished(status="completed", step=4, final_dir="/r/final", duration_s=65),
]  # fmt: skip


def test_terminal_output_shows_what_is_active_progress_eval_and_result():
    text = render(STREAM, tty=True)
    assert "liger: off: no CUDA" in text and "4bit: on (nf4, double quant)" in text
    assert "1/4" in text and "loss 2" in text and "1,234 tok/s" in text and "ETA" in text
    assert "eval @ step 2: loss 1.5" in text and "runtime" not in text
    assert "warning: gradient norm 500 (hint: lower the learning rate)" in text
    assert "done: 4 steps in 01:05" in text and "/r/final" in text


def test_log_output_has_no_carriage_returns():
    text = render(STREAM, tty=False)
    assert "\r" not in text and "\033" not in text
    assert "4/4" in text  # the last step is always printed


def test_user_error_shows_message_and_hint_without_traceback():
    text = render([ev.RunFailed(error_type="DataError", message="d.jsonl: line 3: not valid JSON", hint="fix line 3",
                                user_error=True)], tty=False)  # fmt: skip
    assert text.splitlines() == ["error: d.jsonl: line 3: not valid JSON", "  hint: fix line 3"]


def test_format_duration():
    assert format_duration(5) == "00:05" and format_duration(3725) == "1:02:05"


def test_grpo_samples_are_shown_about_ten_times_a_stage_not_every_step():
    stream = [ev.StageStarted(stage=0, technique="grpo", max_steps=100, train_rows=8, eval_rows=0, data="d")]
    for step in range(1, 101):
        stream += [ev.Sample(step=step, prompt="p", completion=f"best {step}", reward=1.0, label="best"),
                   ev.Sample(step=step, prompt="p", completion=f"worst {step}", reward=0.0, label="worst")]  # fmt: skip
    lines = [line for line in render(stream, tty=False).splitlines() if line.startswith("sample")]
    assert 16 <= len(lines) <= 22, lines
    assert "best 1'" in lines[0] and "worst 1'" in lines[1], "both ends of a shown step are printed"
