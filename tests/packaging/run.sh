#!/usr/bin/env bash
# Installs TokenKernels from a folder of packages (managed/pack.sh) into fresh apps outside the repository, with
# that folder and nuget.org (the machine's mirror) as the only package sources and an empty package cache, and
# runs them, as a user would:
#   net8.0     console app, TokenKernels.Runtime.Cpu, published self-contained for linux-x64 (the .NET 8 runtime)
#   net10.0    console app, TokenKernels.Runtime.Cpu, dotnet run (framework-dependent: runtimes/linux-x64/native)
#   net10.0    the same app published with Native AOT for linux-x64: no trim or AOT warning allowed
#   net10.0    console app with both runtime packages: the CUDA library is the one loaded, and CPU work runs
#   net10.0    console app, TokenKernels.Runtime.Cpu, whose program is the README's Install example
#   net10.0    ONNX Runtime app: TokenKernels.OnnxRuntime, TokenKernels.Runtime.Cpu and Microsoft.ML.OnnxRuntime, running
#              tests/packaging/OnnxRuntimeApp.cs (RegisterTokenKernels, the OrtValue bridges); again with both runtime
#              packages, where the custom-op library of the CUDA library is the one registered
#   README     every C# block of README.md and managed/PACKAGE.md compiled by a netstandard2.1 library in C# 9
#              and a net8.0 library in C# 12, against the TokenKernels package
# Each app but the ONNX Runtime ones runs tests/packaging/EveryOp.cs (every op family once, one value checked each).
# Ends with the line "N passed, N failed".
#
#   tests/packaging/run.sh PACKAGE_FOLDER [WORK_FOLDER]
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
feed=$(cd "${1:?usage: run.sh PACKAGE_FOLDER [WORK_FOLDER]}" && pwd)
work=${2:-$(mktemp -d /tmp/tokenkernels-apps.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
case "$work/" in "$repo"/*) echo "run.sh: the work folder must be outside the repository" >&2; exit 2 ;; esac

version=$(ls "$feed"/TokenKernels.[0-9]*.nupkg | sed -E 's/.*TokenKernels\.([0-9][^/]*)\.nupkg$/\1/' | sort -V | tail -n 1)
[ -n "$version" ] || { echo "run.sh: no TokenKernels package in $feed" >&2; exit 2; }
echo "== fresh apps in $work, TokenKernels $version from $feed"

cat > "$work/nuget.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$work/nuget-packages" />
  </config>
  <packageSources>
    <clear />
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
CONFIG
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
unset TOKENKERNELS_NATIVE_LIBRARY

passed=0
failed=0
result() {  # name, status
    if [ "$2" -eq 0 ]; then echo "PASSED  $1"; passed=$((passed + 1)); else echo "FAILED  $1"; failed=$((failed + 1)); fi
}

# A console app: a csproj written from scratch (as `dotnet new console` makes it), EveryOp.cs, the packages added
# with `dotnet add package`, each at the version of the packages in the folder or, written NAME@VERSION, at its own.
new_console_app() {  # folder, target framework, packages...
    local dir=$work/$1 tfm=$2
    shift 2
    rm -rf "$dir" && mkdir -p "$dir"
    cat > "$dir/App.csproj" <<PROJECT
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>$tfm</TargetFramework>
    <Nullable>enable</Nullable>
    <InvariantGlobalization>true</InvariantGlobalization>
  </PropertyGroup>
</Project>
PROJECT
    cp "$repo/tests/packaging/EveryOp.cs" "$dir/Program.cs"
    local package package_version
    for package in "$@"; do
        package_version=$version
        case "$package" in *@*) package_version=${package#*@}; package=${package%@*} ;; esac
        (cd "$dir" && dotnet add package "$package" --version "$package_version") > "$dir/add-$package.log" 2>&1 \
            || { cat "$dir/add-$package.log"; return 1; }
    done
}

# Runs a built app and checks it reports the library it should have loaded.
run_app() {  # log, expected library file name, command...
    local log=$1 expected=$2
    shift 2
    "$@" > "$log" 2>&1
    local status=$?
    cat "$log"
    if [ $status -eq 0 ] && ! grep -q "from .*/$expected\$" "$log"; then
        echo "expected the library to be loaded from $expected"
        status=1
    fi
    return $status
}

echo "== net8.0 console app, TokenKernels.Runtime.Cpu, self-contained linux-x64 (.NET 8 runtime)"
status=1
if new_console_app net8 net8.0 TokenKernels.Runtime.Cpu \
    && (cd "$work/net8" && dotnet publish -c Release -r linux-x64 --self-contained -o out > publish.log 2>&1 || { cat publish.log; false; }); then
    run_app "$work/net8/run.log" libtokenkernels.so "$work/net8/out/App"
    status=$?
    grep -q '^Runtime: \.NET 8\.' "$work/net8/run.log" || { echo "the app did not run on .NET 8"; status=1; }
fi
result "net8.0 app (self-contained, $(grep -oE '\.NET [0-9.]+' "$work/net8/run.log" 2>/dev/null | head -n 1)) from the packages" $status

echo "== net10.0 console app, TokenKernels.Runtime.Cpu, dotnet run"
status=1
if new_console_app net10 net10.0 TokenKernels.Runtime.Cpu; then
    run_app "$work/net10/run.log" libtokenkernels.so dotnet run -c Release --project "$work/net10/App.csproj"
    status=$?
fi
result "net10.0 app (framework-dependent) from the packages" $status

echo "== the net10.0 app published with Native AOT for linux-x64"
status=1
if [ -f "$work/net10/App.csproj" ]; then
    (cd "$work/net10" && dotnet publish -c Release -r linux-x64 -p:PublishAot=true -o aot > aot-publish.log 2>&1)
    status=$?
    grep -E 'warning|error' "$work/net10/aot-publish.log" | sort -u
    if [ $status -eq 0 ] && grep -qE ': warning (IL|NETSDK)[0-9]+' "$work/net10/aot-publish.log"; then
        echo "Native AOT publish warned (trim or AOT analysis)"
        status=1
    fi
    if [ $status -eq 0 ]; then
        run_app "$work/net10/aot-run.log" libtokenkernels.so "$work/net10/aot/App"
        status=$?
    else
        tail -n 30 "$work/net10/aot-publish.log"
    fi
fi
result "Native AOT app (no trim or AOT warnings) from the packages" $status

echo "== net10.0 console app with both runtime packages: the CUDA library is loaded"
status=1
if [ -n "$(ls "$feed"/TokenKernels.Runtime.Cuda.*.nupkg 2>/dev/null)" ]; then
    if new_console_app both net10.0 TokenKernels.Runtime.Cpu TokenKernels.Runtime.Cuda; then
        run_app "$work/both/run.log" libtokenkernels_cuda.so dotnet run -c Release --project "$work/both/App.csproj"
        status=$?
        grep -q 'CUDA built: True' "$work/both/run.log" || { echo "the loaded library has no CUDA backend"; status=1; }
    fi
    result "CPU and CUDA packages together (CUDA library loaded, CPU work runs without a GPU)" $status
else
    echo "no TokenKernels.Runtime.Cuda package in $feed"
    result "CPU and CUDA packages together" 1
fi

# An ONNX Runtime app: OnnxRuntimeApp.cs as its program, with TokenKernels.OnnxRuntime, the given runtime packages and
# the native ONNX Runtime package of the version TokenKernels.OnnxRuntime was built against; checks the TokenKernels
# library loaded and the custom-op library registered.
ort_app() {  # folder, expected main library, expected custom-op library, runtime packages...
    local name=$1 main=$2 custom_ops=$3 ort_package ort_version status
    shift 3
    ort_package=$(ls "$feed"/TokenKernels.OnnxRuntime.[0-9]*.nupkg 2>/dev/null | head -n 1)
    if [ -z "$ort_package" ]; then
        echo "no TokenKernels.OnnxRuntime package in $feed"
        return 1
    fi
    ort_version=$(unzip -p "$ort_package" TokenKernels.OnnxRuntime.nuspec | grep -oE 'id="Microsoft\.ML\.OnnxRuntime\.Managed" version="[^"]+"' \
        | head -n 1 | sed -E 's/.*version="([^"]+)"/\1/')
    new_console_app "$name" net10.0 TokenKernels.OnnxRuntime "$@" "Microsoft.ML.OnnxRuntime@$ort_version" || return 1
    cp "$repo/tests/packaging/OnnxRuntimeApp.cs" "$work/$name/Program.cs"
    run_app "$work/$name/run.log" "$main" dotnet run -c Release --project "$work/$name/App.csproj"
    status=$?
    if ! grep -q "^custom-op library: .*/$custom_ops\$" "$work/$name/run.log"; then
        echo "expected the custom-op library $custom_ops to be registered"
        status=1
    fi
    return $status
}

echo "== net10.0 ONNX Runtime app: TokenKernels.OnnxRuntime, TokenKernels.Runtime.Cpu and Microsoft.ML.OnnxRuntime, dotnet run"
ort_app ort libtokenkernels.so libtokenkernels_ort.so TokenKernels.Runtime.Cpu
result "ONNX Runtime app (RegisterTokenKernels, OrtValue bridges) from the packages" $?

echo "== the ONNX Runtime app with both runtime packages: the custom-op library of the CUDA library is registered"
if [ -n "$(ls "$feed"/TokenKernels.Runtime.Cuda.*.nupkg 2>/dev/null)" ]; then
    ort_app ort-both libtokenkernels_cuda.so libtokenkernels_cuda_ort.so TokenKernels.Runtime.Cpu TokenKernels.Runtime.Cuda
    result "ONNX Runtime app with the CPU and CUDA packages (libtokenkernels_cuda_ort.so registered)" $?
else
    echo "no TokenKernels.Runtime.Cuda package in $feed"
    result "ONNX Runtime app with the CPU and CUDA packages" 1
fi

echo "== the README's Install example as a net10.0 console app (TokenKernels.Runtime.Cpu)"
status=1
if new_console_app install net10.0 TokenKernels.Runtime.Cpu; then
    # The first C# block of README.md, which the Install section opens with, as the whole program.
    awk '/^```csharp/ { inside = 1; next } inside && /^```/ { exit } inside { print }' "$repo/README.md" > "$work/install/Program.cs"
    run_app "$work/install/run.log" libtokenkernels.so dotnet run -c Release --project "$work/install/App.csproj"
    status=$?
    grep -q '^577 -> 561 tokens' "$work/install/run.log" || { echo "the Install example printed something else"; status=1; }
fi
result "README Install example runs from the packages" $status

echo "== README.md and PACKAGE.md C# examples, compiled against the TokenKernels package"
readme_dir=$work/readme
rm -rf "$readme_dir" && mkdir -p "$readme_dir"
cp "$repo"/tests/readme/{Givens.cs,ReadmeExamples.targets,ReadmeExamples.Cs9.csproj,ReadmeExamples.Net8.csproj,Directory.Build.props,extract-examples.sh} "$readme_dir/"
for doc in README.md managed/PACKAGE.md; do
    for project in Cs9 Net8; do
        label="$doc examples, $( [ $project = Cs9 ] && echo 'netstandard2.1 library in C# 9' || echo 'net8.0 library in C# 12')"
        log="$readme_dir/$(basename "$doc" .md)-$project.log"
        rm -rf "$readme_dir/obj" "$readme_dir/bin"
        (cd "$readme_dir" && dotnet build "ReadmeExamples.$project.csproj" -c Release \
            -p:TokenKernelsPackageVersion="$version" -p:ReadmeFile="$repo/$doc") > "$log" 2>&1
        status=$?
        [ $status -eq 0 ] || grep -E 'error|warning' "$log" | sort -u | head -n 20
        result "$label" $status
    done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
