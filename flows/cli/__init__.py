"""The ``asd`` command: one sub-command per pipeline stage, each with ``--workspace``.

One module per command group; each has ``register(sub)`` adding its sub-commands. Modules import
only argparse and torch-free config modules at the top, and what a command runs (Prefect, torch,
MLflow) inside its function, so ``asd --help`` and ``asd sql`` start in well under a second
(benchmarks/cli_startup.py).
"""

from __future__ import annotations

import argparse
import logging
import sys

from flows.cli import data, monitor, pipeline, registry, scoring, server, training
from flows.cli.common import prefect_env, reads_only, session_workspace

# Order of the sub-commands in ``asd --help``: the order a pipeline runs them, then the Prefect server.
COMMAND_MODULES = (data, training, scoring, registry, monitor, pipeline, server)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asd", description="Anomalous sound detection pipeline (DCASE Task 2).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefect_env()
    if argv is None:  # the `asd` process itself; tests call main(argv) inside one long-lived process
        from flows import prefect_server

        # flows use the workspace's resident Prefect server (asd server start) when it answers, else a
        # temporary one that dies with this process; SIGTERM unwinds like Ctrl-C
        prefect_server.install(lambda: flow_workspace(args))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("asd").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("prefect.flow_runs", "prefect.task_runs"):  # filters survive Prefect's own logging set-up
        logging.getLogger(name).addFilter(_hide_reported_errors)
    try:
        workspace = session_workspace(args)  # checked before any flow, so a bad workspace fails at once
        from asd_core.storage.cleanup import workspace_session

        with workspace_session(workspace, clean=not reads_only(args)):  # leftovers of dead runs go first
            return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:  # our own errors, and OSErrors, name what and where
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (prefect_server.install)
        print(f"error: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


def _hide_reported_errors(record: logging.LogRecord) -> bool:
    """Drop Prefect's traceback of an error this command reports itself in one ``error:`` line
    (ValueError / OSError: our own messages name the file and the problem); keep every other one."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, (ValueError, OSError))


def flow_workspace(args):
    """The workspace whose resident Prefect server the command's flows use: ``--workspace``, or for
    ``asd pipeline`` without it the config's workspace. Asked only when prefect is first imported."""
    if getattr(args, "workspace", None) is not None:
        return args.workspace if getattr(args, "workspace_used", True) else None
    if getattr(args, "command", None) == "pipeline":
        try:
            from asd_core.pipeline.config import load_config

            return load_config(args.config, list(args.set or [])).workspace
        except Exception:  # noqa: BLE001 - the command reports a bad config itself
            return None
    return None


if __name__ == "__main__":
    sys.exit(main())
