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


# --- issue 14: progress events, resumed steps, stopped stages, elapsed time and pace -------------------------------

T0 = 1_800_000_000.0
RESUMED = [
    ev.RunStarted(run_dir="/r", name="demo", model="tiny", device="cpu", dtype="float32", stages=["sft"], active={},
                  trainable_params=5, total_params=50, resumed_from="/r/checkpoints/checkpoint-20", time=T0),
    ev.StageStarted(stage=0, technique="sft", max_steps=100, train_rows=9, eval_rows=1, data="d", time=T0 + 1),
]  # fmt: skip


def test_a_resumed_run_starts_at_its_checkpoint_step_not_zero():
    """Defect 7: the bar read '0% step 0/100' for ~25 s after a resume, then jumped to 20/100."""
    printer = Printer(io.StringIO(), tty=True)
    for event in RESUMED:
        printer.render(event)
    assert printer.state.step == 20
    printer.render(ev.Progress(step=20, max_steps=100, time=T0 + 30))  # on_train_begin confirms it
    assert printer.state.step == 20 and printer.state.series == {}


def test_progress_moves_the_bar_between_logs_without_a_line_each():
    stream = [*RESUMED, ev.Metrics(step=20, max_steps=100, loss=1.5, time=T0 + 2)]
    stream += [ev.Progress(step=step, max_steps=100, time=T0 + 2 + step - 20) for step in range(21, 31)]
    text = render(stream, tty=True)
    assert text.rsplit("\r\033[K", 1)[-1].startswith("[#######.") and "30/100" in text.rsplit("\r", 1)[-1]
    assert "loss 1.5" in text.rsplit("\r", 1)[-1], "the last logged loss stays on the bar"
    lines = render(stream, tty=False).splitlines()
    bars = [line for line in lines if "/100" in line]
    assert len(bars) <= 3, bars  # one a few seconds (of the events' own times), not one per progress event
    state = Printer(io.StringIO()).state
    for event in stream:
        state.feed(event)
    assert state.step == 30 and len(state.series["train:loss"]) == 1, "progress moves the step, not the curves"


def test_elapsed_time_and_steps_per_second_come_from_the_events_times():
    stream = [*RESUMED] + [ev.Progress(step=s, max_steps=100, time=T0 + 10 + 2 * (s - 20)) for s in range(20, 31)]
    printer = Printer(io.StringIO())
    for event in stream:
        printer.render(event)
    state = printer.state
    assert state.elapsed_s() == 30.0  # the last event's time less the run_started's
    assert state.steps_per_s() == 0.5
    assert "ETA 02:20" in state.status_parts()  # 70 steps at 2 s each


def test_a_stopped_stage_says_stopped_not_done():
    """Defect 14: a stage that ended because of a stop was logged as 'done'."""
    stream = [*RESUMED, ev.Metrics(step=35, max_steps=100, loss=1.0, time=T0 + 40),
              ev.Warning(message="stop requested: finishing this step, then saving", time=T0 + 41),
              ev.StageFinished(stage=0, technique="sft", step=36, output_dir="/r/final", time=T0 + 42),
              ev.RunFinished(status="stopped", step=36, final_dir="/r/final", duration_s=42, time=T0 + 43)]  # fmt: skip
    text = render(stream, tty=False)
    assert "stage 1 (sft) stopped at step 36" in text and "done at step" not in text
    done = render([*STREAM[:2], ev.StageFinished(stage=0, technique="sft", step=4, output_dir="/r/final")], tty=False)
    assert "stage 1 (sft) done at step 4" in done


def test_library_warnings_are_printed_as_such():
    text = render([ev.Warning(message="trl: All reward functions returned None", source="library")], tty=False)
    assert text == "library warning: trl: All reward functions returned None\n"


def test_a_curate_stage_says_what_it_kept_and_why_the_rest_was_dropped():
    curated = ev.Curated(stage=1, prompts=320, samples=8, folder="/r/stages/round-1-curate/curated",
                         scores={"mean": 0.41, "min": 0.0, "p25": 0.0, "median": 0.5, "p75": 1.0, "max": 1.0},
                         sft_rows=250, below_min_score=70, pairs=269, no_spread=51, below_margin=0)  # fmt: skip
    text = render([curated], tty=False)
    assert "curated 320 prompts x 8 answers; scores mean 0.41 (min 0, p25 0, median 0.5, p75 1, max 1)" in text
    assert "best-of-8 SFT rows: 250 kept, 70 below curate.min_score" in text
    assert "pairs (best vs worst): 269 kept, 51 dropped without spread" in text and "/r/stages/round-1-curate/curated" in text
