"""`torchrun --nproc-per-node N -m vlforge.training --stage 2 --shards ... --out RUN_DIR`: the same arguments as
`vlforge train`, one process per rank (DDP by default, FSDP2 with --fsdp)."""

import argparse
import sys

from vlforge.training.cli_commands import add_train_arguments, run_train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlforge.training", description=__doc__.splitlines()[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_train(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # as vlforge.cli reports them
        print(f"vlforge train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
