"""``python -m src.methods <method> <train|resume|eval>``: the method's root script, for exps/*.sh.

Prints the script's name (train.py, resume_gano.py, ...) and exits 0; an unknown method or kind is
said on stderr, with the methods, and exits 2. Only the registry is imported: no torch.
"""

import sys

from src.methods import REGISTRY, SCRIPT_KINDS, UnknownMethodError, entry


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in SCRIPT_KINDS:
        print(f"usage: python -m src.methods <{'|'.join(REGISTRY)}> <{'|'.join(SCRIPT_KINDS)}>", file=sys.stderr)
        return 2
    try:
        print(getattr(entry(argv[0]), argv[1]))
    except UnknownMethodError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
