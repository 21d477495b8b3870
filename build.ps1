# Windows convenience wrapper over the same CMake presets and dotnet commands the README uses on
# Linux; all build logic lives in CMakeLists.txt, CMakePresets.json and managed/native.targets.
#   ./build.ps1            # configure, build and run every test suite (cmake --workflow --preset test)
#   ./build.ps1 -Demo      # the main job: the tokenkernels demo on a photograph, then a short bench (CPU)
#   ./build.ps1 -Cuda ON   # force the CUDA backend ON (or OFF); AUTO by default
param(
    [switch]$Demo,
    [ValidateSet("AUTO", "ON", "OFF")][string]$Cuda = "AUTO"
)
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$env:TOKENKERNELS_CUDA = $Cuda
if ($Demo) {
    dotnet run --project managed/TokenKernels.Cli -c Release
} else {
    cmake --workflow --preset test
}
exit $LASTEXITCODE
