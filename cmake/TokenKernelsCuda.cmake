# Decides whether the CUDA backend is built (TOKENKERNELS_WITH_CUDA) and enables the language.
#
# Default architectures: sm_80 machine code (runs on every 8.x GPU: A100, Ada sm_89, Orin sm_87 by
# binary compatibility) and sm_90 machine code plus compute_90 PTX, which the driver compiles for
# newer GPUs (Blackwell). Override with -DCMAKE_CUDA_ARCHITECTURES=...
#
# The CUDA runtime is linked statically by default (CMAKE_CUDA_RUNTIME_LIBRARY=Static): the library
# then loads, and CPU work runs, on machines without a driver. -DCMAKE_CUDA_RUNTIME_LIBRARY=Shared links
# libcudart.so instead, so that a tool that interposes the runtime (a GPU simulator, a profiler or
# tracer that replaces libcudart) sees every call; such a library needs libcudart.so at load time.
include(CheckLanguage)

set(TOKENKERNELS_WITH_CUDA OFF)
string(TOUPPER "${TOKENKERNELS_CUDA}" _tk_cuda_mode)
if(_tk_cuda_mode STREQUAL "")
  set(_tk_cuda_mode AUTO)
endif()
if(NOT _tk_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "TOKENKERNELS_CUDA must be AUTO, ON or OFF, got '${TOKENKERNELS_CUDA}'")
endif()

if(NOT _tk_cuda_mode STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # CUDA 11.x does not support g++ 12 (its CUB headers fail); use g++-11 when it is installed.
    if(NOT CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
      execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --version OUTPUT_VARIABLE _tk_nvcc_version ERROR_QUIET)
      if(_tk_nvcc_version MATCHES "release ([0-9]+)\\." AND CMAKE_MATCH_1 LESS 12)
        find_program(_tk_gxx11 NAMES g++-11)
        if(_tk_gxx11)
          set(CMAKE_CUDA_HOST_COMPILER "${_tk_gxx11}" CACHE FILEPATH "Host compiler for nvcc")
        endif()
      endif()
    endif()
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures")
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_RUNTIME_LIBRARY Static CACHE STRING "CUDA runtime the library links: Static (default) or Shared")
    set_property(CACHE CMAKE_CUDA_RUNTIME_LIBRARY PROPERTY STRINGS Static Shared)
    if(NOT CMAKE_CUDA_RUNTIME_LIBRARY MATCHES "^(Static|Shared)$")
      message(FATAL_ERROR "CMAKE_CUDA_RUNTIME_LIBRARY must be Static or Shared, got '${CMAKE_CUDA_RUNTIME_LIBRARY}'")
    endif()
    set(TOKENKERNELS_WITH_CUDA ON)
  elseif(_tk_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "TOKENKERNELS_CUDA=ON but no CUDA compiler was found: install the CUDA toolkit "
                        "(nvcc on PATH, or -DCMAKE_CUDA_COMPILER=/path/to/nvcc), or configure with -DTOKENKERNELS_CUDA=OFF")
  endif()
endif()

if(TOKENKERNELS_WITH_CUDA)
  message(STATUS "TokenKernels: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, ${CMAKE_CUDA_RUNTIME_LIBRARY} runtime)")
else()
  message(STATUS "TokenKernels: CUDA backend OFF (TOKENKERNELS_CUDA=${TOKENKERNELS_CUDA})")
endif()
