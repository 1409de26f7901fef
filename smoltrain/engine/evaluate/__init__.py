"""Evaluation: the base and each trained stage scored on the same held-out items, item by item.

One `Evaluator` serves both ways in: `smoltrain eval RUN_DIR|MODEL` (this process, evaluate_main)
and a preset's [eval] section (the worker calls it after each chosen stage; engine/run.py). For
each subject (the base model, then each stage in pipeline order) it loads the model the way
`smoltrain chat` does (engine/chat.py: the stage's adapter on its base, 4-bit on CUDA when the run
trained in 4-bit), runs every [[eval.tasks]] entry, and writes `eval/<subject>.json` with every
item's score (evalresults.py owns the format, the statistics and the table):

- harness tasks (harness.py): lm-evaluation-harness benchmarks or local task YAML files;
- prompts tasks (prompts.py): held-out prompts answered in batches (greedily, or sampled), scored by reward
  functions (the run's GRPO rewards by default);
- the judge (judge.py): each subject's answers to a prompts task against the previous subject's
  (or the base's), by a reward model or a judge model, as a win rate.

What can be checked before any weights load is checked first (`check`): prompts files, task names
and files, the judge's folder, so a typo fails in seconds and, in a run, before training starts.
When all subjects are scored, a later stage scoring below the one before it beyond the 95%
interval is a warning naming the stage and the task, with the practice's remedies.

Runs in the CLI's process or the worker. Imports torch; never textual.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoltrain.config.schema import EvalSection, EvalTask, RewardFunction, RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.evaluate import harness, prompts
from smoltrain.engine.evaluate.judge import Judge, build_judge
from smoltrain.engine.events import Emit, EvalResult, Warning
from smoltrain.errors import ConfigError
from smoltrain.evalresults import (
    JudgeScores,
    SubjectResults,
    TaskScores,
    estimate,
    read_results,
    regression_warnings,
    write_subject,
)
from smoltrain.rundir import RunDir


@dataclass(frozen=True)
class Subject:
    name: str  # "base" or the stage's name
    technique: str  # "base" or the stage's technique
    order: int  # base 0, then the stages in pipeline order


def subjects(cfg: RunConfig, stage_names: list[str], section: EvalSection) -> list[Subject]:
    """Base (if asked), then the evaluated stages in pipeline order."""
    from smoltrain.config.load import stage_configs
    from smoltrain.config.pipeline import expand_names

    stages = stage_configs(cfg)
    chosen = expand_names(section.stages, cfg) if section.stages is not None else \
        [n for n, c in stages if facts(c.train.technique).policy]
    out = [Subject("base", "base", 0)] if section.base else []
    for i, (name, stage) in enumerate(stages):
        if name in chosen and name in stage_names:
            out.append(Subject(name, stage.train.technique, i + 1))
    return out


class Evaluator:
    """Scores subjects on [eval]'s tasks into `folder`; `emit` gets an eval_result event per subject."""

    def __init__(self, section: EvalSection, folder: Path, *, default_rewards: list[RewardFunction],
                 resolve_model: Callable[[str], Path], judge_folder: Path | None = None, stage_names: Sequence[str] = (),
                 emit: Emit | None = None, say: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.section, self.folder = section, folder
        self.default_rewards = [r for r in default_rewards if r.name != "reward_model"]
        self.resolve_model, self.judge_folder, self.stage_names = resolve_model, judge_folder, list(stage_names)
        self.emit, self.say = emit, say or (lambda _: None)
        self._judge: Judge | None = None

    # --- before any weights ---------------------------------------------------------------------

    def check(self) -> None:
        """Every task's source and the judge, as far as can be told without loading a model."""
        if not self.section.tasks:
            raise ConfigError("eval.tasks: nothing to evaluate on",
                              hint='add [[eval.tasks]] with harness = "gsm8k" (or a task YAML), or prompts = "held_out.jsonl"')  # fmt: skip
        labels = [t.label for t in self.section.tasks]
        twice = next((label for label in labels if labels.count(label) > 1), None)
        if twice is not None:
            raise ConfigError(f"eval.tasks: two tasks are called {twice!r}", hint="give one of them a name = \"...\"")
        for i, task in enumerate(self.section.tasks):
            where = f"eval.tasks[{i}]"
            if task.prompts is not None:
                prompts.load_prompts(task, 1, where)
                if not self.rewards_of(task) and self.section.judge is None:
                    raise ConfigError(f"{where}: prompts task {task.label!r} has nothing to score its answers",
                                      hint='give it rewards = [{ name = "math_answer" }] (or the like), or add an [eval.judge]')  # fmt: skip
            else:
                harness.check_task(task, where)
        judge = self.section.judge
        if judge is not None and judge.reward_model is not None and judge.reward_model not in self.stage_names:
            from smoltrain.engine.techniques.external_rewards import model_folder

            assert self.judge_folder is not None
            model_folder(self.judge_folder, "eval.judge", key="reward_model")  # a stage of the run is trained later

    def rewards_of(self, task: EvalTask) -> list[RewardFunction]:
        return list(task.rewards) if task.rewards is not None else self.default_rewards

    # --- one subject ----------------------------------------------------------------------------

    def score(self, subject: Subject, model: Any, tokenizer: Any, description: str, device: str) -> SubjectResults:
        from smoltrain.engine.chat import quiet_libraries

        with quiet_libraries():
            results = self._score(subject, model, tokenizer, description, device)
        write_subject(self.folder, results)
        if self.emit is not None:
            self.emit(EvalResult(subject=subject.name, path=str(self.folder / f"{subject.name}.json"),
                                 scores=_headline(results)))  # fmt: skip
        return results

    def _score(self, subject: Subject, model: Any, tokenizer: Any, description: str, device: str) -> SubjectResults:
        section = self.section
        results = SubjectResults(subject.name, subject.technique, description, subject.order, time=time.time())
        for i, task in enumerate(section.tasks):
            where, started = f"eval.tasks[{i}]", time.time()
            if task.harness is not None:
                results.tasks[task.label] = harness.run_task(model, tokenizer, task, limit=section.limit,
                                                             batch_size=section.batch_size, where=where)  # fmt: skip
            else:
                asked = prompts.load_prompts(task, section.limit, where)
                answers = prompts.answer(model, tokenizer, asked, max_new_tokens=section.max_new_tokens,
                                         batch_size=section.batch_size, where=where, samples=task.samples,
                                         temperature=task.temperature)  # fmt: skip
                specs = self.rewards_of(task)
                metrics = prompts.score(specs, asked, answers, resolve_model=self.resolve_model, device=device)
                results.tasks[task.label] = TaskScores(kind="prompts", metrics=metrics,
                                                       higher_is_better={m: True for m in metrics},
                                                       answers=[group[0] for group in answers],
                                                       questions=asked.questions)  # fmt: skip
            self.say(f"  {subject.name}: {task.label} scored in {time.time() - started:.1f}s")
        return results

    def judge_pending(self) -> None:
        """Judge every scored subject's answers that are not judged yet, against the subject before it (or
        the base): as soon as the judge exists (a reward stage of the run trains after the first stages)."""
        judge = self.section.judge
        if judge is None or (judge.reward_model is not None and (self.judge_folder is None or not self.judge_folder.exists())):
            return
        from smoltrain.engine.chat import quiet_libraries
        from smoltrain.engine.model import resolve_device

        results = read_results(self.folder)
        for i, later in enumerate(results):
            judged = False
            for n, task in enumerate(self.section.tasks):
                label = task.label
                answers = later.tasks[label].answers if label in later.tasks else []
                if task.prompts is None or label in later.judge or not answers:
                    continue
                earlier = [r for r in results[:i] if label in r.tasks and len(r.tasks[label].answers) == len(answers)]
                earlier = [r for r in earlier if r.subject == "base"] if judge.against == "base" else earlier
                if not earlier:
                    continue
                with quiet_libraries():
                    if self._judge is None:
                        self._judge = build_judge(judge, reward_folder=self.judge_folder, device=resolve_device(),
                                                  load_causal=_load_judge_model)  # fmt: skip
                    asked = prompts.load_prompts(task, len(answers), f"eval.tasks[{n}]")
                    wins = self._judge.verdicts(asked, answers, earlier[-1].tasks[label].answers)
                later.judge[label] = JudgeScores(judge=self._judge.label, against=earlier[-1].subject, wins=wins)
                judged = True
            if judged:
                write_subject(self.folder, later)
                if self.emit is not None:
                    self.emit(EvalResult(subject=later.subject, path=str(self.folder / f"{later.subject}.json"),
                                         scores=_headline(later)))  # fmt: skip

    # --- after the last subject -----------------------------------------------------------------

    def report(self) -> list[Warning]:
        """Warnings for every stage that made the model worse, beyond the interval; also emitted."""
        found = [Warning(message=message, hint=hint) for message, hint in regression_warnings(read_results(self.folder))]
        for warning in found:
            if self.emit is not None:
                self.emit(warning)
        return found

    def release(self) -> None:
        self._judge = None
        _release_memory()


def _headline(results: SubjectResults) -> dict[str, float]:
    out = {f"{task} · {metric}": estimate(values).mean for task, scores in results.tasks.items()
           for metric, values in scores.metrics.items()}  # fmt: skip
    out.update({f"judge · {task} vs {j.against}": estimate(j.wins).mean for task, j in results.judge.items()})
    return out


def _load_judge_model(name: str) -> tuple[Any, Any]:
    from smoltrain.config.schema import ModelSection
    from smoltrain.engine.chat import load_plain_model

    return load_plain_model(ModelSection(name_or_path=name))


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- a run's models ---------------------------------------------------------------------------------


def load_subject(run: RunDir, cfg: RunConfig, subject: Subject) -> tuple[Any, Any, str]:
    """(model, tokenizer, what was loaded) for a subject of a run: the base, or a stage's trained model."""
    from smoltrain.engine.chat import find_model, load_model, load_plain_model
    from smoltrain.pastrun import first_model

    if subject.name == "base":  # what the first stage trained on: a past run's model, where it started from one
        base = cfg.model.model_copy(update={"name_or_path": first_model(run, cfg.model.name_or_path)})
        model, tokenizer = load_plain_model(base, cfg.quantization)
        return model, tokenizer, base.name_or_path
    chat = load_model(find_model(run.root, subject.name if cfg.stages else None))
    return chat.model, chat.tokenizer, chat.target.description


def run_defaults(run: RunDir, cfg: RunConfig, section: EvalSection) -> tuple[list[RewardFunction], Callable[[str], Path], Path | None]:
    """A run's default rewards (its first GRPO or RLOO stage's), how its reward models are found, and the judge's folder."""
    from smoltrain.config.load import stage_configs

    stages = stage_configs(cfg)
    sampling = [c.group_sampling for _, c in stages if c.group_sampling is not None]  # GRPO's or RLOO's
    rewards = list(sampling[0].rewards) if sampling else list(cfg.grpo.rewards)
    reward_stages = {n: run.stage(n if cfg.stages else None).final for n, c in stages if not facts(c.train.technique).policy}

    def resolve(ref: str) -> Path:
        if ref in reward_stages:
            return reward_stages[ref]
        path = Path(ref).expanduser()
        return RunDir(path).final if RunDir(path).final.is_dir() else path

    judge = section.judge
    judge_folder = resolve(judge.reward_model) if judge is not None and judge.reward_model is not None else None
    return rewards, resolve, judge_folder


class RunEvaluation:
    """A run's [eval] in the worker: checked before training, each chosen stage scored as it finishes
    (the base just before the first), the regressions reported when the run ends. A subject already
    scored (eval/<name>.json, from before a resume) is not scored again."""

    def __init__(self, run: RunDir, cfg: RunConfig, emit: Emit) -> None:
        from smoltrain.config.load import stage_configs

        assert cfg.eval is not None
        self.run, self.cfg, self.emit = run, cfg, emit
        defaults, resolve, judge_folder = run_defaults(run, cfg, cfg.eval)
        names = [n for n, _ in stage_configs(cfg)]
        self.evaluator = Evaluator(cfg.eval, run.eval, default_rewards=defaults, resolve_model=resolve,
                                   judge_folder=judge_folder, stage_names=names, emit=emit)  # fmt: skip
        self.subjects = subjects(cfg, names, cfg.eval)
        self.scored = 0

    def check(self) -> None:
        self.evaluator.check()

    def after_stage(self, name: str) -> None:
        chosen = [s for s in self.subjects if s.name == name]
        if not chosen:
            return
        for subject in [s for s in self.subjects if s.name == "base"] + chosen:
            if (self.run.eval / f"{subject.name}.json").is_file():
                continue
            model, tokenizer, description = load_subject(self.run, self.cfg, subject)
            self.evaluator.score(subject, model, tokenizer, description, device=str(model.device.type))
            del model, tokenizer
            self.evaluator.release()
            self.scored += 1
        self.evaluator.judge_pending()
        self.evaluator.release()

    def finish(self) -> None:
        if self.scored:
            self.evaluator.judge_pending()
            self.evaluator.report()
