# Finds ONNX Runtime's C/C++ API headers for the custom-op library (native/ort):
#   TOKENKERNELS_ORT              AUTO (default: built when the headers are found), ON (required), OFF
#   TOKENKERNELS_ORT_INCLUDE_DIR  the directory holding onnxruntime_cxx_api.h; when empty, the
#                                 Microsoft.ML.OnnxRuntime 1.32.0 NuGet package's build/native/include
#                                 in the package cache ($NUGET_PACKAGES, else ~/.nuget/packages),
#                                 restored at configure time through tests/managed/TokenKernels.OnnxRuntime.Tests
#                                 (which references the package) when dotnet is found and it is missing.
# Sets TOKENKERNELS_WITH_ORT and, with it, TOKENKERNELS_ORT_HEADERS (the directory used). ONNX Runtime
# itself is not linked: the library receives its API from ORT when ORT loads it.

set(TOKENKERNELS_ORT "AUTO" CACHE STRING "Build the ONNX Runtime custom-op library tokenkernels_ort: AUTO (when ORT's headers are found), ON (required), OFF")
set_property(CACHE TOKENKERNELS_ORT PROPERTY STRINGS AUTO ON OFF)
set(TOKENKERNELS_ORT_INCLUDE_DIR "" CACHE PATH "ONNX Runtime's C/C++ API headers (onnxruntime_cxx_api.h); empty: the restored Microsoft.ML.OnnxRuntime 1.32.0 NuGet package")

# The ORT version whose headers the library is written and tested against (its API version is the minor).
set(_tk_ort_version "1.32.0")
set(_tk_ort_api_version 32)

string(TOUPPER "${TOKENKERNELS_ORT}" _tk_ort_mode)
set(TOKENKERNELS_WITH_ORT OFF)
set(TOKENKERNELS_ORT_HEADERS "")

# Not built: AUTO says why in a status line, ON stops the configure with it.
macro(_tk_ort_unavailable reason)
  if(_tk_ort_mode STREQUAL "ON")
    message(FATAL_ERROR "TOKENKERNELS_ORT=ON but ${reason}")
  endif()
  message(STATUS "TokenKernels: the ONNX Runtime custom-op library is not built: ${reason}")
endmacro()

function(_tk_ort_api_version_of dir out)
  set(${out} "" PARENT_SCOPE)
  if(EXISTS "${dir}/onnxruntime_c_api.h")
    file(STRINGS "${dir}/onnxruntime_c_api.h" _line REGEX "^#define ORT_API_VERSION [0-9]+")
    string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" _version "${_line}")
    set(${out} "${_version}" PARENT_SCOPE)
  endif()
endfunction()

if(_tk_ort_mode STREQUAL "OFF")
  message(STATUS "TokenKernels: the ONNX Runtime custom-op library is not built (TOKENKERNELS_ORT=OFF)")
elseif(NOT _tk_ort_mode STREQUAL "AUTO" AND NOT _tk_ort_mode STREQUAL "ON")
  message(FATAL_ERROR "TOKENKERNELS_ORT is '${TOKENKERNELS_ORT}'; expected AUTO, ON or OFF")
elseif(CMAKE_CROSSCOMPILING AND _tk_ort_mode STREQUAL "AUTO")
  # The NuGet package's headers are the host's ORT; a cross build (arm64, win64) has no ORT to load
  # the library under its emulator, and the tests that use it run on the host.
  _tk_ort_unavailable("this is a cross build (TOKENKERNELS_ORT=ON builds it anyway)")
else()
  set(_tk_ort_dir "${TOKENKERNELS_ORT_INCLUDE_DIR}")
  set(_tk_ort_source "TOKENKERNELS_ORT_INCLUDE_DIR")
  if(_tk_ort_dir STREQUAL "")
    if(DEFINED ENV{NUGET_PACKAGES} AND NOT "$ENV{NUGET_PACKAGES}" STREQUAL "")
      set(_tk_nuget "$ENV{NUGET_PACKAGES}")
    elseif(WIN32 AND DEFINED ENV{USERPROFILE})
      set(_tk_nuget "$ENV{USERPROFILE}/.nuget/packages")
    else()
      set(_tk_nuget "$ENV{HOME}/.nuget/packages")
    endif()
    file(TO_CMAKE_PATH "${_tk_nuget}" _tk_nuget)
    set(_tk_ort_dir "${_tk_nuget}/microsoft.ml.onnxruntime/${_tk_ort_version}/build/native/include")
    set(_tk_ort_source "the Microsoft.ML.OnnxRuntime ${_tk_ort_version} NuGet package")
    if(NOT EXISTS "${_tk_ort_dir}/onnxruntime_cxx_api.h" AND NOT CMAKE_CROSSCOMPILING)
      find_program(TOKENKERNELS_ORT_DOTNET dotnet)
      if(TOKENKERNELS_ORT_DOTNET)
        set(_tk_ort_project "${PROJECT_SOURCE_DIR}/tests/managed/TokenKernels.OnnxRuntime.Tests/TokenKernels.OnnxRuntime.Tests.csproj")
        message(STATUS "TokenKernels: restoring Microsoft.ML.OnnxRuntime ${_tk_ort_version} for its headers (dotnet restore ${_tk_ort_project})")
        execute_process(
          COMMAND "${TOKENKERNELS_ORT_DOTNET}" restore "${_tk_ort_project}"
          RESULT_VARIABLE _tk_restore_result
          OUTPUT_VARIABLE _tk_restore_output
          ERROR_VARIABLE _tk_restore_output
          TIMEOUT 900)
        if(NOT _tk_restore_result EQUAL 0)
          message(STATUS "TokenKernels: dotnet restore failed (${_tk_restore_result}):\n${_tk_restore_output}")
        endif()
      endif()
    endif()
  endif()

  _tk_ort_api_version_of("${_tk_ort_dir}" _tk_found_api)
  if(NOT EXISTS "${_tk_ort_dir}/onnxruntime_cxx_api.h")
    if(_tk_ort_source STREQUAL "TOKENKERNELS_ORT_INCLUDE_DIR")
      _tk_ort_unavailable("TOKENKERNELS_ORT_INCLUDE_DIR (${_tk_ort_dir}) has no onnxruntime_cxx_api.h")
    elseif(TOKENKERNELS_ORT_DOTNET)
      _tk_ort_unavailable("ONNX Runtime's headers are not at ${_tk_ort_dir} and restoring the package did not bring them (set TOKENKERNELS_ORT_INCLUDE_DIR)")
    else()
      _tk_ort_unavailable("ONNX Runtime's headers are not at ${_tk_ort_dir} and dotnet, which would restore them, was not found (set TOKENKERNELS_ORT_INCLUDE_DIR)")
    endif()
  elseif(_tk_found_api STREQUAL "" OR _tk_found_api LESS _tk_ort_api_version)
    _tk_ort_unavailable("the headers in ${_tk_ort_dir} are ONNX Runtime API version ${_tk_found_api}; the library needs ${_tk_ort_api_version} (${_tk_ort_version}) or newer")
  else()
    set(TOKENKERNELS_WITH_ORT ON)
    set(TOKENKERNELS_ORT_HEADERS "${_tk_ort_dir}")
    message(STATUS "TokenKernels: the ONNX Runtime custom-op library is built against the headers of ${_tk_ort_source} (API version ${_tk_found_api}): ${_tk_ort_dir}")
  endif()
endif()
