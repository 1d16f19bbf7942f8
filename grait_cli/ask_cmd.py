"""``grait ask JOB "question" [--choices A B C ...]``: the tuned model's answer next to the
base model's, and whether each is a refusal.

``JOB`` is either a job folder that ``grait run --out DIR`` wrote (its ``report.json`` names
the model, task, device and dtype; its ``adapter/`` is the tuned LoRA): the models run in
this process; or a service job id (a succeeded tune job): a ``generate`` job is queued
through the API (``POST /v1/jobs/{id}/generations``), waited for and printed. Both answer
as evaluation does (``grait_engine.pipeline.ask``): the base model with the basic and the
refuse prompt, the tuned model with the refuse prompt, greedy, 0-shot.

Exit codes: 0 answered, 1 a service problem or a failed job, 2 a bad question or folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grait_cli.client import DEFAULT_URL
from grait_cli.common import run_command
from grait_cli.states import JobStatus

# answer key -> label printed (the prompt style each used is in the result's "prompts").
ROWS = (
    ("base", "base model (basic prompt)"),
    ("base_refuse", "base model (refuse prompt)"),
    ("tuned", "tuned model (refuse prompt)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # --url and --api-key, as every client command has them (used for a service job only).
    parser.add_argument(
        "--url", default=None, help=f"service URL (default: $GRAIT_URL or {DEFAULT_URL})"
    )
    parser.add_argument("--api-key", default=None, help="API key (default: $GRAIT_API_KEY)")
    parser.add_argument("job", help="a job folder written by `grait run`, or a service job id")
    parser.add_argument("question", help="the question to ask")
    parser.add_argument(
        "--choices",
        nargs="+",
        default=None,
        metavar="TEXT",
        help="the options of a choice question, lettered A, B, C... in this order",
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for a service job"
    )


def run(args: argparse.Namespace) -> int:
    questions = [{"question": args.question, "choices": args.choices}]
    folder = Path(args.job)
    if folder.is_dir():
        return _ask_local(folder, questions, args.json)
    if "/" in args.job or "\\" in args.job:
        print(f"error: no job folder {args.job}", file=sys.stderr)
        return 2
    return run_command(lambda client, a: _ask_service(client, a, questions), args)


def _ask_local(folder: Path, questions: list[dict[str, Any]], as_json: bool) -> int:
    """Answer in this process with the folder's model and adapter."""
    from grait_engine.job_folder import ADAPTER_DIR, REPORT_FILE

    report_path, adapter = folder / REPORT_FILE, folder / ADAPTER_DIR
    if not report_path.is_file() or not adapter.is_dir():
        print(
            f"error: {folder} is not a finished `grait run` folder (report.json and "
            "adapter/ are needed)",
            file=sys.stderr,
        )
        return 2
    config = json.loads(report_path.read_text(encoding="utf-8"))["job"]["config"]
    from grait_engine.pipeline.ask import AskError, ask, question_items

    try:
        question_items(config["task"], questions)  # fail before loading the model
    except AskError as error:
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 2
    from grait_engine.modeling import ModelSpec, load_model
    from grait_engine.pipeline.runtime import RuntimeConfig

    runtime = RuntimeConfig.from_dict(config.get("runtime") or {})
    spec = ModelSpec(
        config.get("model_path") or config["model"],
        device=config.get("device", "cpu"),
        dtype=config.get("dtype", "float32"),
        quantization=runtime.quantization,
    )
    model, tokenizer = load_model(spec)
    device_type = next(model.parameters()).device.type
    result = ask(
        model,
        tokenizer,
        config["task"],
        questions,
        adapter,
        batch_size=runtime.batch_for(device_type),
    )
    print_result(result, as_json)
    return 0


def _ask_service(client: Any, args: argparse.Namespace, questions: list[dict[str, Any]]) -> int:
    """Queue a generate job of the service job ``args.job``, wait, print its answers."""
    job = client.create_generation(args.job, questions)
    print(f"generate job {job['id']} queued", file=sys.stderr)
    try:
        job = client.wait_for_job(job["id"], timeout=args.timeout)
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if job["status"] != JobStatus.SUCCEEDED:
        failure = job.get("error") or {}
        print(
            f"error: generate job {job['id']} {job['status']}: {failure.get('code')}: "
            f"{failure.get('message')}",
            file=sys.stderr,
        )
        return 1
    print_result(job["result"], args.json)
    return 0


def print_result(result: dict[str, Any], as_json: bool = False) -> None:
    """Each question with its options, then one line per model: the answer and
    ``refusal: yes/no`` (``--json``: the result as it is)."""
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for entry in result["answers"]:
        print(f"question: {entry['question']}")
        for letter, text in (entry.get("choices") or {}).items():
            print(f"  {letter}. {text}")
        width = max(len(label) for _, label in ROWS)
        for key, label in ROWS:
            answer = entry.get(key)
            if answer is None:
                continue
            refusal = "yes" if answer["refusal"] else "no"
            print(f"{label + ':':<{width + 1}} {answer['answer']!r}  refusal: {refusal}")
