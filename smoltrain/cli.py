"""The `smoltrain` command: subcommands for headless runs, preset checks and the demo.

    smoltrain run PRESET.toml [--set section.key=value ...] [--name NAME] [--gpus N]
    smoltrain validate PRESET.toml ...
    smoltrain data PRESET.toml [--rows N]
    smoltrain resume RUN_DIR [--gpus N]
    smoltrain chat RUN_DIR [--stage NAME] [--compare]
    smoltrain export RUN_DIR --to merged|gguf|ollama [--stage NAME] [--out DIR]
    smoltrain eval RUN_DIR|MODEL [--tasks ...] [--stage NAME] [--limit N] [--judge REWARD]
    smoltrain presets
    smoltrain demo

Exit codes: 0 done (or stopped on request), 2 a user error (one line naming what and where,
plus a hint; the traceback only with --debug), 1 a bug. Keep this module's imports light:
`smoltrain --help` must answer in well under a second, so torch and textual are never imported
on that path.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from smoltrain.errors import BUG_EXIT_CODE, USER_ERROR_EXIT_CODE, SmoltrainError
from smoltrain.ranks import rank, world_size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smoltrain",
        description="Post-train an LLM on your one GPU: QLoRA SFT, reward models, DPO, KTO, GRPO, RLOO, distillation and "
        "best-of-K curation from TOML presets, "
        "headless or in a terminal app (smoltrain with no command).",
        epilog="Start with `smoltrain demo` (offline, CPU, about four minutes), then `smoltrain presets`.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train from a preset, headless", description="Train from a TOML preset, headless.")
    run.add_argument("preset", help="a preset file, or the name of a shipped one (see `smoltrain presets`)")
    _add_override_args(run)
    run.add_argument("--name", help="run name: results go to <output_dir>/<name> (default: preset name + time)")
    _add_gpus_arg(run, "train on N GPUs, one process each, through accelerate (sets distributed.gpus; see "
                  "README, \"More than one GPU\")")  # fmt: skip

    curate = sub.add_parser("curate", help="sample K answers per prompt, keep the best (SFT) and best-vs-worst pairs (DPO)",
                            description="Run a preset's curate stage alone (its first one; a preset without one: its "
                            "prompts, scored by its rewards), from the preset's model or --set model.name_or_path="
                            "runs/<run>: best-of-K answers and on-policy preference pairs in <run>/curated/.")  # fmt: skip
    curate.add_argument("preset", help="a preset file, or the name of a shipped one")
    _add_override_args(curate)
    curate.add_argument("--name", help="run name (default: preset name + curate + time)")

    validate = sub.add_parser("validate", help="check presets without training", description="Check presets without training.")
    validate.add_argument("presets", nargs="+", help="preset files or shipped preset names")
    _add_override_args(validate)

    data = sub.add_parser("data", help="show what the model will see: shapes, lengths, trained tokens",
                          description="Load each stage's data with the model's tokenizer (no weights) exactly as "
                          "training will: the detected shape, rows kept and dropped, token lengths, what "
                          "train.max_length truncates, and the first rows with the trained tokens marked.")  # fmt: skip
    data.add_argument("preset", help="a preset file or the name of a shipped one")
    _add_override_args(data)
    data.add_argument("--rows", type=int, default=3, metavar="N", help="rows to show (default 3)")

    resume = sub.add_parser("resume", help="continue a stopped or interrupted run",
                            description="Continue a run from its last complete checkpoint; it ends at the same step.")  # fmt: skip
    resume.add_argument("run_dir", help="the run's folder, e.g. runs/demo-sft-20260101-120000")
    _add_gpus_arg(resume, "the number of GPUs it trained on (default: its distributed.gpus; another number is refused)")

    sub.add_parser("presets", help="list the shipped presets", description="List the shipped presets.")

    chat = sub.add_parser("chat", help="talk to a trained model (and its base, with --compare)",
                          description="A terminal chat with a run's trained model, in its chat template, answers "
                          "streamed as they are generated. In the chat, /help lists the commands (/temperature, "
                          "/top_p, /max_new_tokens, /system, /reset, /compare, /quit).")  # fmt: skip
    chat.add_argument("run_dir", help="the run's folder, e.g. runs/demo-sft-20260101-120000")
    chat.add_argument("--stage", help="a pipeline stage's model instead of the last one (its [[stages]] name)")
    chat.add_argument("--compare", action="store_true", help="answer each prompt with the base and the trained model, side by side")
    chat.add_argument("--temperature", type=float, default=0.7, help="0 for greedy (default 0.7)")
    chat.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling (default 0.9)")
    chat.add_argument("--max-new-tokens", type=int, default=256, help="longest answer in tokens (default 256)")
    chat.add_argument("--system", help="a system prompt for the conversation")

    export = sub.add_parser("export", help="merge the adapter, or convert to GGUF or an Ollama model",
                            description="Export a run's trained model: merged (a 16-bit copy of the base with the "
                            "adapter merged in, safetensors), gguf (for llama.cpp, LM Studio) or ollama (a GGUF "
                            "and a Modelfile with the chat template and stop tokens). Offline.")  # fmt: skip
    export.add_argument("run_dir", help="the run's folder")
    export.add_argument("--to", required=True, choices=("merged", "gguf", "ollama"), help="what to export")
    export.add_argument("--stage", help="a pipeline stage's model instead of the last one")
    export.add_argument("--out", help="where to write it (default: <run>/exports/<format>)")
    export.add_argument("--quant", default="f16", metavar="TYPE",
                        help="GGUF type: f16, bf16, q8_0, or a K-quant such as q4_k_m with llama.cpp's quantize tool (default f16)")  # fmt: skip
    export.add_argument("--llama-cpp", metavar="DIR", help="your llama.cpp checkout: its convert_hf_to_gguf.py and "
                        "llama-quantize are used instead of the bundled converter")  # fmt: skip

    ev = sub.add_parser("eval", help="score the base and each trained stage on held-out tasks",
                        description="Score a run's base model and each trained stage (or one model) on the same "
                        "items: lm-evaluation-harness tasks, held-out prompts scored by rewards, and a judge's win "
                        "rate; a table with 95%% intervals, and a warning for any stage that made the model worse. "
                        "A run's [eval] section says what to score; the flags replace it. See docs/eval.md.")  # fmt: skip
    ev.add_argument("target", help="a run's folder, or a model (a folder with config.json, or a hub id)")
    ev.add_argument("--tasks", help="comma-separated: harness task names (gsm8k, arc_easy, ...), task YAML files, "
                    "or files of held-out prompts (.jsonl, .json, .csv, .parquet)")  # fmt: skip
    ev.add_argument("--stage", action="append", default=[], metavar="NAME", help="a stage to score (repeatable; default: every policy stage)")
    ev.add_argument("--limit", type=int, metavar="N", help="score the first N items of each task (default 200)")
    ev.add_argument("--judge", metavar="REWARD", help="a reward stage of the run (or a reward run's folder) that "
                    "judges each stage's answers against the previous stage's")  # fmt: skip
    ev.add_argument("--rewards", metavar="NAMES", help=f"rewards for prompts files: {', '.join(('exact_match', 'math_answer', 'json'))} "
                    "(default: the run's GRPO rewards)")  # fmt: skip
    ev.add_argument("--system-prompt", help="a system turn for every question")
    ev.add_argument("--batch-size", type=int, help="questions per forward pass (default 16)")
    ev.add_argument("--out", help="a model's results folder (default evals/<model>); a run's go to RUN_DIR/eval")

    for name, summary in (("estimate", "peak GPU memory of a preset, component by component"),
                          ("fit", "propose the batch shape that fits a GPU, as --set flags")):  # fmt: skip
        mem = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + " (reads the "
                             "model's config.json only; no GPU or torch needed). See docs/memory.md.")  # fmt: skip
        mem.add_argument("preset", help="a preset file or the name of a shipped one")
        _add_override_args(mem)
        mem.add_argument("--gpu-mem", type=float, metavar="GB", help="the GPU's memory in GiB, e.g. 12 for an RTX 3060 "
                         "(default: the first GPU's total from nvidia-smi)")  # fmt: skip
        mem.add_argument("--model-config", metavar="PATH", help="the model's config.json (or its folder), when the "
                         "model is not downloaded: e.g. bench/model_configs/llama-3.1-8b/config.json")  # fmt: skip
        mem.add_argument("--gpus", type=int, metavar="N", help="estimate per GPU for a run on N GPUs (the same as "
                         "--set distributed.gpus=N; the strategy is [distributed] strategy)")  # fmt: skip

    demo = sub.add_parser("demo", help="train the bundled tiny model end to end, offline",
                          description="SFT, reward model, DPO and GRPO of the bundled tiny model on its toy-world data: offline, on CPU (presets/demo.toml).")  # fmt: skip
    _add_override_args(demo)
    demo.add_argument("--name", help="run name (default: demo + time)")
    return parser


def _add_gpus_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--gpus", type=_gpu_count, metavar="N", help=help_text)


def _gpu_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GPUs (1 or more)")
    return count


def _add_override_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset value, e.g. --set train.max_steps=50 (repeatable)")  # fmt: skip


def cmd_run(preset: str, overrides: list[str], name: str | None, gpus: int | None = None) -> int:
    from smoltrain import headless, runner
    from smoltrain.config.load import load_config
    from smoltrain.config.presets import find_preset

    path = find_preset(preset)
    cfg = load_config(path, [*overrides, *([f"distributed.gpus={gpus}"] if gpus else [])])
    if world_size() > 1:  # this is one rank of the user's own `accelerate launch`
        return _run_as_rank(runner.rank_run_dir(cfg, name), resume=False)
    run_dir = runner.create_run_dir(cfg, name or cfg.name or runner.default_run_name(path))
    print(f"run folder: {run_dir}")
    return headless.run_headless(run_dir)


def cmd_curate(preset: str, overrides: list[str], name: str | None) -> int:
    from smoltrain import headless, runner
    from smoltrain.config.load import load_config, stage_configs, validate_config
    from smoltrain.config.pipeline import curate_only
    from smoltrain.config.presets import find_preset

    path = find_preset(preset)
    stage, raw = curate_only(stage_configs(load_config(path, overrides), str(path)))
    cfg = validate_config(raw, source=f"{path} (stage {stage})")
    run_dir = runner.create_run_dir(cfg, name or runner.default_run_name(f"{path.stem}-curate"))
    print(f"run folder: {run_dir} (stage {stage} of {path.name}, from {cfg.model.name_or_path})")
    return headless.run_headless(run_dir)


def _run_as_rank(run_dir: Path, resume: bool) -> int:
    """One process of the user's own `accelerate launch -m smoltrain run|resume ...`: the worker itself, in
    this process (the launcher made the ranks); rank 0 also prints the run's events as they come."""
    from smoltrain import headless
    from smoltrain.engine import worker

    args = [str(run_dir), *(["--resume"] if resume else [])]
    if rank() != 0:
        return worker.main(args)
    print(f"run folder: {run_dir}")
    with headless.following(run_dir):
        return worker.main(args)


def cmd_validate(presets: list[str], overrides: list[str]) -> int:
    from smoltrain.config.load import load_config, stage_configs
    from smoltrain.config.presets import find_preset
    from smoltrain.datacheck import check_data

    worst = 0
    for preset in presets:
        path = find_preset(preset)
        try:
            cfg = load_config(path, overrides)
        except SmoltrainError as exc:
            print(exc.render(), file=sys.stderr)
            worst = USER_ERROR_EXIT_CODE
            continue
        try:
            checked = check_data(cfg)  # the data and the model's chat template, with the tokenizer only
        except SmoltrainError as exc:
            print(f"{path}: {exc.render()}", file=sys.stderr)
            worst = USER_ERROR_EXIT_CODE
            continue
        print(f"ok: {path}: {cfg.model.name_or_path}")
        for name, stage in stage_configs(cfg):
            steps = f"{stage.train.max_steps} steps" if stage.train.max_steps else f"{stage.train.epochs:g} epoch(s)"
            if stage.train.technique == "curate":
                steps = f"{stage.curate.samples} answers per prompt"
            source = stage.data and (stage.data.path or f"what {stage.data.curated} keeps")
            print(f"  {name}: {stage.train.technique} on {source or '?'}, {steps}")
        print("\n".join(checked))
    return worst


def cmd_data(preset: str, overrides: list[str], rows: int) -> int:
    from smoltrain.config.load import load_config
    from smoltrain.config.presets import find_preset
    from smoltrain.datacheck import describe_data

    for line in describe_data(load_config(find_preset(preset), overrides), rows=rows):
        print(line, flush=True)
    return 0


def cmd_resume(run_dir: str, gpus: int | None = None) -> int:
    from smoltrain import headless, runner

    if world_size() > 1:  # one rank of the user's own `accelerate launch`
        return _run_as_rank(Path(run_dir).expanduser().resolve(), resume=True)
    resolved = runner.resume_checks(Path(run_dir), gpus)
    print(f"resuming: {resolved}")
    return headless.run_headless(resolved, resume=True)


def cmd_memory(
    command: str, preset: str, overrides: list[str], gpu_mem: float | None, model_config: str | None, gpus: int | None = None
) -> int:
    from smoltrain.config.load import load_config
    from smoltrain.config.presets import find_preset
    from smoltrain.errors import ConfigError, FitError
    from smoltrain.memory import detect_gpu_memory_gb, estimate, fit

    # A GPU of -5 or 0 GiB would be answered "does not fit", as if the model were at fault; nan and inf too.
    if gpu_mem is not None and not 0 < gpu_mem < float("inf"):
        raise ConfigError(f"--gpu-mem {gpu_mem:g}: the GPU's memory must be a positive number of GiB",
                          hint="for example --gpu-mem 12 for an RTX 3060, 24 for a 4090; leave it out to read it from nvidia-smi")  # fmt: skip
    if gpus is not None and gpus < 1:
        raise ConfigError(f"--gpus {gpus}: the number of GPUs must be 1 or more",
                          hint="for example --gpus 2 for a run on two GPUs; leave it out for one")  # fmt: skip
    if gpus is not None:  # after the preset's own --set flags, as a later --set would be
        overrides = [*overrides, f"distributed.gpus={gpus}"]
    cfg = load_config(find_preset(preset), overrides)
    gpu = gpu_mem if gpu_mem is not None else detect_gpu_memory_gb()
    if command == "estimate":
        result = estimate(cfg, gpu, model_config=model_config)
        print(result.render_table())
        fits = result.fits is not False
        if cfg.eval is not None:  # [eval] runs between the stages: its own peak
            from smoltrain.memory.estimate import estimate_eval, load_shape

            evaluation = estimate_eval(cfg, load_shape(cfg, model_config), batch_size=cfg.eval.batch_size,
                                       prompt_tokens=min(cfg.train.max_length, 1024),
                                       new_tokens=cfg.eval.max_new_tokens, gpu_mem_gb=gpu)  # fmt: skip
            print()
            print(evaluation.render_table())
            fits = fits and evaluation.fits is not False
        return 0 if fits else USER_ERROR_EXIT_CODE
    if gpu is None:
        raise FitError("smoltrain fit: no GPU found (nvidia-smi) and no --gpu-mem given",
                       hint="give the GPU's memory in GiB, e.g. --gpu-mem 12 for an RTX 3060, 24 for a 4090")  # fmt: skip
    proposal = fit(cfg, gpu, model_config=model_config)
    print(proposal.explain())
    print()
    print(proposal.estimate.render_table())
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from smoltrain.engine.chat_terminal import chat_main

    return chat_main(Path(args.run_dir), stage=args.stage, compare=args.compare, temperature=args.temperature,
                     top_p=args.top_p, max_new_tokens=args.max_new_tokens, system=args.system)  # fmt: skip


def cmd_export(args: argparse.Namespace) -> int:
    from smoltrain.engine.export import export_main

    return export_main(Path(args.run_dir), to=args.to, stage=args.stage, out=Path(args.out) if args.out else None,
                       quant=args.quant, llama_cpp=Path(args.llama_cpp) if args.llama_cpp else None)  # fmt: skip


def cmd_eval(args: argparse.Namespace) -> int:
    from smoltrain.engine.evaluate.command import evaluate_main

    return evaluate_main(args.target, tasks=args.tasks, stages=args.stage, limit=args.limit, judge=args.judge,
                         rewards=args.rewards, system_prompt=args.system_prompt, batch_size=args.batch_size,
                         out=Path(args.out) if args.out else None)  # fmt: skip


def cmd_presets() -> int:
    from smoltrain.config.presets import list_presets

    presets = list_presets()
    width = max((len(p.name) for p in presets), default=0)
    for p in presets:
        print(f"{p.name:<{width}}  {p.description}")
    print("\nrun one with: smoltrain run <name>   (or copy presets/<name>.toml and edit it)")
    return 0


def cmd_demo(overrides: list[str], name: str | None) -> int:
    from smoltrain.config.presets import DEMO_PRESET

    return cmd_run(str(DEMO_PRESET), overrides, name or None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args.preset, args.overrides, args.name, args.gpus)
        if args.command == "curate":
            return cmd_curate(args.preset, args.overrides, args.name)
        if args.command == "validate":
            return cmd_validate(args.presets, args.overrides)
        if args.command == "data":
            return cmd_data(args.preset, args.overrides, args.rows)
        if args.command == "resume":
            return cmd_resume(args.run_dir, args.gpus)
        if args.command in ("estimate", "fit"):
            return cmd_memory(args.command, args.preset, args.overrides, args.gpu_mem, args.model_config, args.gpus)
        if args.command == "presets":
            return cmd_presets()
        if args.command == "chat":
            return cmd_chat(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "demo":
            return cmd_demo(args.overrides, args.name)
        # No subcommand: the terminal app (imported here so `--help` and subcommands stay light).
        from smoltrain.tui.app import run_app

        return run_app()
    except SmoltrainError as exc:
        if args.debug:
            raise
        print(exc.render(), file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `smoltrain validate ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout at exit
        return 0
    except Exception:
        if args.debug:
            raise
        import traceback

        traceback.print_exc()
        print("error: this is a bug in smoltrain; please report it with the traceback above", file=sys.stderr)
        return BUG_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
