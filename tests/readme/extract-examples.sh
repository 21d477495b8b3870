#!/usr/bin/env bash
# Turns every ```csharp block of a Markdown file (README.md) into a method of a generated C# file, so that the
# README's examples are compiled exactly as written (tests/readme/ReadmeExamples.*.csproj run this before compiling).
#
#   extract-examples.sh README.md OUTPUT_DIR
#
# Block N becomes OUTPUT_DIR/ReadmeExampleN.g.cs:
#
#   using ...;                                  <- the block's own `using X;` lines, hoisted
#   static partial class ReadmeExamples
#   {
#       static void ExampleN() { ...the block... }
#   }
#
# One file per block, so each block needs all of its usings. Names a block uses without declaring them (the
# reader's data: LoadSigLipTokens(), devicePointer, keys, batch, ...) are declared in tests/readme/Givens.cs.
# #line directives map every line back to the Markdown file, so a compile error names README.md and its line.
# Blocks fenced as ```csharp, ```cs or ```c# are taken; other blocks are ignored. Fails when there is none.
# A file whose content is unchanged is left as it was (so an incremental build does not recompile), and files of
# blocks that no longer exist are removed.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 README.md OUTPUT_DIR" >&2
    exit 2
fi
readme=$1
out=$2
if [ ! -f "$readme" ]; then
    echo "extract-examples.sh: $readme does not exist" >&2
    exit 1
fi
readme_abs=$(cd "$(dirname "$readme")" && pwd)/$(basename "$readme")
mkdir -p "$out"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT

awk -v out="$staging" -v source="$readme_abs" '
function flush(    file, i) {
    file = out "/ReadmeExample" n ".g.cs"
    print "// Generated from " source " by tests/readme/extract-examples.sh (code block " n "): do not edit." > file
    for (i = 1; i <= nusing; i++) {
        print "#line " usingline[i] " \"" source "\"" > file
        print using_[i] > file
    }
    print "#line default" > file
    print "" > file
    print "static partial class ReadmeExamples" > file
    print "{" > file
    print "    static void Example" n "()" > file
    print "    {" > file
    print "#line " first " \"" source "\"" > file
    for (i = 1; i <= nbody; i++) {
        print body[i] > file
    }
    print "#line default" > file
    print "    }" > file
    print "}" > file
    close(file)
}
{ sub(/\r$/, "") }
!inblock && /^```(csharp|cs|c#)[ \t]*$/ {
    inblock = 1; n++; nusing = 0; nbody = 0; first = NR + 1; opened = NR
    next
}
inblock && /^```[ \t]*$/ {
    inblock = 0
    flush()
    next
}
inblock {
    # A using directive at the start of a line (not a using statement or declaration) moves to the top of the file;
    # a blank line keeps its place, so the lines of the body still match the Markdown file.
    if ($0 ~ /^using[ \t]+(static[ \t]+)?[A-Za-z_][A-Za-z0-9_.]*[ \t]*;[ \t]*(\/\/.*)?$/ ||
        $0 ~ /^using[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*=[ \t]*[A-Za-z_][A-Za-z0-9_.<>, ]*;[ \t]*(\/\/.*)?$/) {
        nusing++
        using_[nusing] = $0
        usingline[nusing] = NR
        body[++nbody] = ""
    } else {
        body[++nbody] = $0
    }
}
END {
    if (inblock) {
        printf "%s:%d: the code block opened here is never closed\n", source, opened > "/dev/stderr"
        exit 1
    }
    if (n == 0) {
        printf "%s: no ```csharp code block found\n", source > "/dev/stderr"
        exit 1
    }
    printf "extract-examples.sh: %d C# examples from %s\n", n, source
}
' "$readme"

for file in "$staging"/ReadmeExample*.g.cs; do
    target=$out/$(basename "$file")
    if ! cmp -s "$file" "$target"; then
        cp "$file" "$target"
    fi
done
for file in "$out"/ReadmeExample*.g.cs; do
    if [ ! -e "$staging/$(basename "$file")" ]; then
        rm -f "$file"
    fi
done
