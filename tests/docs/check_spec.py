#!/usr/bin/env python3
"""Fails when docs/SPEC.md and the public header have drifted apart.

The header native/include/tokenkernels/tokenkernels.h is parsed for
  - every TK_API function,
  - every enum constant (TK_STATUS_*, TK_DTYPE_*, TK_POOL_*, TK_MERGE_*, ...),
  - every #define macro but the include guard and TK_API (TK_VERSION_*, TK_MAX_RANK),
  - every typedef name (tk_pool_mode, tk_stream, tk_dlpack_deleter, ...),
  - every field of every struct (tk_tensor and the *_params structs).
Each must be named in docs/SPEC.md in backticks (`tk_pool`, `TK_POOL_BILINEAR`, `kernel[3]`). A struct's
fields must be named in the section (## heading) of the page that first names the struct, so that the
fields of tk_merge_params are described with merging and not only mentioned somewhere.
The other way round, every `tk_...` / `TK_...` identifier that the page names in backticks must be declared
by the header, so that a renamed or removed function does not live on in the docs.

Standard library only; runs under any python3:

    python3 tests/docs/check_spec.py [--header PATH] [--spec PATH]

Exit status 0 when they agree, 1 (listing every problem) when they do not, 2 on a usage error.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_HEADER = os.path.join(ROOT, "native", "include", "tokenkernels", "tokenkernels.h")
DEFAULT_SPEC = os.path.join(ROOT, "docs", "SPEC.md")

# Macros that are plumbing, not API a user reads about.
IGNORED_MACROS = {"TK_API", "TOKENKERNELS_H"}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def parse_header(text):
    """The header's names: {"functions", "constants", "macros", "types": sets; "structs": {name: [fields]}}."""
    code = strip_comments(text)
    functions = set(re.findall(r"\bTK_API\b[^;{(]*?\b(tk_\w+)\s*\(", code))
    constants = set()
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", code):
        for item in body.split(","):
            name = item.split("=")[0].strip()
            if name:
                constants.add(name)
    macros = set(re.findall(r"^\s*#\s*define\s+(\w+)", code, flags=re.M)) - IGNORED_MACROS
    macros = {m for m in macros if m.startswith("TK_")}
    structs = {}
    for tag, body, alias in re.findall(r"\btypedef\s+struct\s+(\w*)\s*\{([^}]*)\}\s*(\w+)\s*;", code):
        fields = []
        for declaration in body.split(";"):
            declaration = declaration.strip()
            if not declaration:
                continue
            # "int32_t kernel[3]", "void* data", "const char* a, * b": the declarators after the type.
            type_and_first, *others = declaration.split(",")
            names = [re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", type_and_first).group(1)]
            names += [re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", d).group(1) for d in others]
            fields += names
        structs[alias] = fields
    types = set(re.findall(r"\btypedef\b[^;{]*?\b(tk_\w+)\s*;", code))  # typedef int32_t tk_status;
    types |= set(structs)
    types |= set(re.findall(r"\btypedef\s+struct\s+\w+\s*\*\s*(tk_\w+)\s*;", code))  # opaque handles
    types |= set(re.findall(r"\btypedef\b[^;{]*?\(\s*\*\s*(tk_\w+)\s*\)\s*\(", code))  # function pointers
    return {"functions": functions, "constants": constants, "macros": macros, "types": types, "structs": structs}


def code_spans(markdown):
    """The text inside backticks, fenced code blocks included (their lines are code too)."""
    spans = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.S | re.M):
        spans.append(block)
    without_blocks = re.sub(r"^```[^\n]*\n.*?^```", " ", markdown, flags=re.S | re.M)
    spans += re.findall(r"`([^`\n]+)`", without_blocks)
    return spans


def identifiers(spans):
    found = set()
    for span in spans:
        found |= set(re.findall(r"\b\w+\b", span))
    return found


def sections(markdown):
    """(heading, text) of every ## section; the text before the first ## heading is one too."""
    parts = re.split(r"^(## [^\n]*)\n", markdown, flags=re.M)
    result = [("(top)", parts[0])]
    for i in range(1, len(parts) - 1, 2):
        result.append((parts[i], parts[i + 1]))
    return result


def check(header_text, spec_text):
    """Every problem found, as lines of text; empty when the page and the header agree."""
    names = parse_header(header_text)
    spans = code_spans(spec_text)
    named = identifiers(spans)
    problems = []

    for kind in ("functions", "constants", "macros", "types"):
        missing = sorted(names[kind] - named)
        if missing:
            problems.append(f"{kind} of the header not named in backticks in the SPEC: " + ", ".join(missing))

    for struct, fields in sorted(names["structs"].items()):
        home = next(((heading, text) for heading, text in sections(spec_text)
                     if struct in identifiers(code_spans(text))), None)
        if home is None:
            problems.append(f"struct {struct} is not named in backticks in the SPEC")
            continue
        in_section = identifiers(code_spans(home[1]))
        missing = [f for f in fields if f not in in_section]
        if missing:
            problems.append(f"fields of {struct} not named in backticks in its section \"{home[0][3:]}\": " +
                            ", ".join(missing))

    # Names in string literals ("TK_STATUS_UNKNOWN", a value tk_status_name returns) and prefixes
    # (`tk_cuda_*`, `TK_POOL_*`) are not declarations.
    declared = names["functions"] | names["constants"] | names["macros"] | names["types"]
    outside_strings = identifiers(re.sub(r'"[^"\n]*"', " ", span) for span in spans)
    unknown = sorted(name for name in outside_strings
                     if re.fullmatch(r"(tk|TK)_\w*[^_\W]", name) and name not in declared)
    if unknown:
        problems.append("names in the SPEC that the header does not declare: " + ", ".join(unknown))
    return problems, names


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--header", default=DEFAULT_HEADER)
    parser.add_argument("--spec", default=DEFAULT_SPEC)
    args = parser.parse_args(argv)
    try:
        with open(args.header, encoding="utf-8") as f:
            header_text = f.read()
        with open(args.spec, encoding="utf-8") as f:
            spec_text = f.read()
    except OSError as error:
        print(f"check_spec: {error}", file=sys.stderr)
        return 2
    problems, names = check(header_text, spec_text)
    counts = (f"{len(names['functions'])} functions, {len(names['constants'])} enum constants, "
              f"{len(names['macros'])} macros, {len(names['types'])} types, "
              f"{sum(len(f) for f in names['structs'].values())} fields of {len(names['structs'])} structs")
    if not names["functions"] or not names["constants"] or not names["structs"]:
        print(f"check_spec: found too little in {args.header} ({counts}): has the header's layout changed?",
              file=sys.stderr)
        return 1
    if problems:
        print(f"{os.path.relpath(args.spec)} is out of step with {os.path.relpath(args.header)}:")
        for problem in problems:
            print("  - " + problem)
        return 1
    print(f"{os.path.relpath(args.spec)} names everything in {os.path.relpath(args.header)}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
