"""The ``unetseg`` command (also ``python -m unetseg``): ``unetseg predict ...``,
``unetseg export ...``."""

from __future__ import annotations

import sys

COMMANDS = {"predict": "segment images with a trained model folder",
            "export": "write a model folder as a bioimage.io model package (.zip)"}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``unetseg <command> ...``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        listing = "\n".join(f"  {name:10s} {text}" for name, text in COMMANDS.items())
        print(f"usage: unetseg <command> [options]\n\ncommands:\n{listing}",
              file=sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from unetseg import cli

    if argv[0] == "export":
        from unetseg.export import package

        return cli.run(package.run, argv[1:])
    from unetseg.infer import predict

    return cli.run(predict.run, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
