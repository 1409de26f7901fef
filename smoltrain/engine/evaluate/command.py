"""`smoltrain eval RUN_DIR|MODEL [--tasks ...] [--stage NAME] [--limit N] [--judge REWARD]`.

A run folder: its [eval] section (or the flags) scores the base and each evaluated stage, into
`RUN_DIR/eval/`, and prints the table (evalresults.render) and any regression. A model (a folder
with config.json, or a hub id) is scored alone, into `--out` (default `evals/<model>/`). Flags
replace what the run's [eval] says: --tasks its tasks, --stage its stages, --limit its limit.

A --tasks entry is a harness task name (gsm8k, arc_easy, ...), a harness task YAML file, or a file of
held-out prompts (.jsonl, .json, .csv, .parquet), scored by --rewards (default: the run's GRPO rewards).

Runs in the CLI's process. Imports torch only after the run folder and the tasks were checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from smoltrain.config.schema import EvalSection, EvalTask, JudgeSection, ModelSection, RewardFunction
from smoltrain.errors import ConfigError
from smoltrain.evalresults import read_results, render
from smoltrain.rundir import RunDir, running_worker

if TYPE_CHECKING:
    from smoltrain.config.schema import RunConfig
    from smoltrain.engine.evaluate import Subject

PROMPT_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SIMPLE_REWARDS = ("exact_match", "math_answer", "json")  # rewards that need no options, for --rewards


def parse_tasks(text: str, rewards: list[RewardFunction] | None) -> list[EvalTask]:
    tasks = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        source = str(Path(item).expanduser()) if Path(item).expanduser().exists() else item
        if item.endswith(PROMPT_FILE_SUFFIXES):
            tasks.append(EvalTask(prompts=source, rewards=rewards))
        else:
            tasks.append(EvalTask(harness=source))
    if not tasks:
        raise ConfigError(f"--tasks {text!r}: no task named", hint="e.g. --tasks gsm8k,arc_easy or --tasks held_out.jsonl")
    return tasks


def parse_rewards(text: str | None) -> list[RewardFunction] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in SIMPLE_REWARDS:
            raise ConfigError(f"--rewards {name}: not a reward that needs no options ({', '.join(SIMPLE_REWARDS)})",
                              hint="rewards with options (format, length, python) go in the preset's [[eval.tasks]]")  # fmt: skip
    return [RewardFunction(name=n) for n in names]


def evaluate_main(target: str, *, tasks: str | None, stages: list[str], limit: int | None, judge: str | None,
                  rewards: str | None, system_prompt: str | None, batch_size: int | None, out: Path | None) -> int:  # fmt: skip
    parsed_rewards = parse_rewards(rewards)
    path = Path(target).expanduser()
    run = RunDir(path)
    if run.is_run():
        return _evaluate_run(run, tasks=tasks, stages=stages, limit=limit, judge=judge, rewards=parsed_rewards,
                             system_prompt=system_prompt, batch_size=batch_size)  # fmt: skip
    if stages:
        raise ConfigError(f"--stage: {target} is not a run folder, so it has no stages", hint="leave --stage out")
    if tasks is None:
        raise ConfigError(f"{target}: a model on its own needs --tasks", hint="e.g. smoltrain eval MODEL --tasks gsm8k --limit 100")
    if judge is not None:
        raise ConfigError("--judge: a model on its own has nothing to be compared with", hint="evaluate a run folder")
    section = _section(EvalSection(base=False), tasks, parsed_rewards, limit, system_prompt, batch_size, judge=None)
    return _evaluate_model(target, section, out or Path("evals") / path.name.replace("/", "_"))


def _section(section: EvalSection, tasks: str | None, rewards: list[RewardFunction] | None, limit: int | None,
             system_prompt: str | None, batch_size: int | None, judge: JudgeSection | None) -> EvalSection:  # fmt: skip
    chosen = parse_tasks(tasks, rewards) if tasks is not None else list(section.tasks)
    if tasks is None and rewards is not None:
        chosen = [t.model_copy(update={"rewards": rewards}) if t.prompts else t for t in chosen]
    if system_prompt is not None:
        chosen = [t.model_copy(update={"system_prompt": system_prompt}) for t in chosen]
    update: dict[str, object] = {"tasks": chosen}
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit {limit}: must be 1 or more", hint="the number of items of each task to score")
        update["limit"] = limit
    if batch_size is not None:
        if batch_size < 1:
            raise ConfigError(f"--batch-size {batch_size}: must be 1 or more", hint="16 is usual")
        update["batch_size"] = batch_size
    if judge is not None:
        update["judge"] = judge
    return section.model_copy(update=update)


def _evaluate_run(run: RunDir, *, tasks: str | None, stages: list[str], limit: int | None, judge: str | None,
                  rewards: list[RewardFunction] | None, system_prompt: str | None, batch_size: int | None) -> int:  # fmt: skip
    from smoltrain.config.load import load_config, stage_configs
    from smoltrain.config.techniques import facts

    cfg = load_config(run.config)
    names = [n for n, _ in stage_configs(cfg)]
    kinds = {n: c.train.technique for n, c in stage_configs(cfg)}
    for name in stages:
        if name not in names:
            raise ConfigError(f"--stage {name}: {run.root} has no stage of that name", hint=f"its stages: {', '.join(names)}")
        if not facts(kinds[name]).policy:
            raise ConfigError(f"--stage {name}: a reward stage scores answers and gives none",
                              hint="evaluate a policy stage, or use it as the judge: --judge " + name)  # fmt: skip
    if judge is not None and judge in kinds and facts(kinds[judge]).policy:
        raise ConfigError(f"--judge {judge}: stage {judge} trained a {kinds[judge]} policy, not a reward model",
                          hint=f"name a reward stage ({', '.join(n for n in names if not facts(kinds[n]).policy) or 'none here'}) "
                          "or a reward run's folder")  # fmt: skip
    judge_section = JudgeSection(reward_model=judge) if judge is not None else None
    section = _section(cfg.eval or EvalSection(), tasks, rewards, limit, system_prompt, batch_size, judge_section)
    if stages:
        section = section.model_copy(update={"stages": stages})
    if not section.tasks:
        raise ConfigError(f"{run.root}: its preset has no [eval] section and no --tasks were given",
                          hint="e.g. --tasks gsm8k --limit 100, or --tasks held_out.jsonl --rewards math_answer")  # fmt: skip
    pid = running_worker(run.root)
    if pid is not None:
        raise ConfigError(f"{run.root} is still training (worker pid {pid})",
                          hint="evaluate when it has finished; a preset's [eval] section scores stages as they finish")  # fmt: skip
    from smoltrain.engine import evaluate

    defaults, resolve, judge_folder = evaluate.run_defaults(run, cfg, section)
    evaluator = evaluate.Evaluator(section, run.eval, default_rewards=defaults, resolve_model=resolve,
                                   judge_folder=judge_folder, say=print)  # fmt: skip
    # Every stage of a finished run is there: the judge's folder is checked like any other.
    evaluator.check()
    chosen = evaluate.subjects(cfg, names, section)
    _check_trained(run, cfg, chosen)
    _print_memory(cfg, section)
    for subject in chosen:
        print(f"scoring {subject.name} ...", flush=True)
        model, tokenizer, description = evaluate.load_subject(run, cfg, subject)
        evaluator.score(subject, model, tokenizer, description, device=str(model.device.type))
        del model, tokenizer
        evaluator.release()
    evaluator.judge_pending()
    print()
    print("\n".join(render([r for r in read_results(run.eval) if r.subject in {s.name for s in chosen}])))
    for warning in evaluator.report():
        print(f"warning: {warning.message}\n  hint: {warning.hint}" if warning.hint else f"warning: {warning.message}")
    print(f"\nresults: {run.eval}/<model>.json (every item's score)")
    return 0


def _check_trained(run: RunDir, cfg: RunConfig, chosen: list[Subject]) -> None:
    from smoltrain.engine.chat import find_model

    for subject in chosen:
        if subject.name != "base":
            find_model(run.root, subject.name if cfg.stages else None)  # a user error if it has no result yet


def _print_memory(cfg: RunConfig, section: EvalSection) -> None:
    """On a GPU, the estimate of evaluation's peak memory, and a refusal when it cannot fit."""
    from smoltrain.errors import FitError
    from smoltrain.memory import detect_gpu_memory_gb
    from smoltrain.memory.estimate import estimate_eval, load_shape

    gpu = detect_gpu_memory_gb()
    if gpu is None:
        return
    try:
        shape = load_shape(cfg)
    except Exception:  # an unreadable config.json: the load itself will say so
        return
    result = estimate_eval(cfg, shape, batch_size=section.batch_size, prompt_tokens=min(cfg.train.max_length, 1024),
                           new_tokens=section.max_new_tokens, gpu_mem_gb=gpu)  # fmt: skip
    print(f"memory: {result.verdict}")
    if result.fits is False:
        raise FitError(f"eval: {result.verdict}", hint=f"lower the batch: --batch-size {max(1, section.batch_size // 2)}")


def _evaluate_model(name: str, section: EvalSection, out: Path) -> int:
    from smoltrain.engine import evaluate
    from smoltrain.engine.chat import load_plain_model

    evaluator = evaluate.Evaluator(section, out, default_rewards=[], resolve_model=Path, say=print)
    evaluator.check()
    print(f"scoring {name} ...", flush=True)
    model, tokenizer = load_plain_model(ModelSection(name_or_path=name))
    subject = evaluate.Subject(Path(name).name or name, "base", 0)
    evaluator.score(subject, model, tokenizer, name, device=str(model.device.type))
    print()
    print("\n".join(render(read_results(out))))
    print(f"\nresults: {out}/{subject.name}.json (every item's score)")
    return 0
