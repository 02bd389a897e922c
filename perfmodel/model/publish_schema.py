"""Write the model file's JSON Schema (generated from :mod:`perfmodel.model.schema`) to
``docs/model-file.schema.json``: ``python -m perfmodel.model.publish_schema [--check | --print]``."""

from __future__ import annotations

import argparse

from perfmodel.model.schema import SCHEMA_PATH, json_schema_text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perfmodel.model.publish_schema", description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 when the published file is out of date")
    ap.add_argument("--print", action="store_true", help="print the schema instead of writing it")
    args = ap.parse_args(argv)
    text = json_schema_text()
    if args.print:
        print(text, end="")
        return 0
    if args.check:
        same = SCHEMA_PATH.is_file() and SCHEMA_PATH.read_text() == text
        print(f"{SCHEMA_PATH}: {'up to date' if same else 'out of date (run without --check to write it)'}")
        return 0 if same else 1
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
