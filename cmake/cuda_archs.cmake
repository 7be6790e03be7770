# Which GPUs the CUDA kernels are compiled for, and whether the CUDA toolkit suits the torch.

# gapo_select_cuda_archs(<out> <nvcc> <torch_archs>)
#   GAPO_CUDA_ARCH (CMake variable or environment, e.g. "80;90a" or "80-real;90"): used as given.
#   Otherwise torch's own list (<torch_archs>: "sm_75,sm_80,...", empty for a CPU torch, which
#   stands for sm_80 and sm_90), less what this nvcc cannot compile (nvcc 13 has nothing below
#   sm_75). Every kept architecture gets machine code, and the newest also gets PTX, which the
#   driver compiles at load time for GPUs newer than any in the list.
function(gapo_select_cuda_archs out nvcc torch_archs)
  if(NOT GAPO_CUDA_ARCH AND DEFINED ENV{GAPO_CUDA_ARCH})
    set(GAPO_CUDA_ARCH "$ENV{GAPO_CUDA_ARCH}")
  endif()
  if(GAPO_CUDA_ARCH)
    string(REPLACE "," ";" _archs "${GAPO_CUDA_ARCH}")
    set(${out} "${_archs}" PARENT_SCOPE)
    return()
  endif()

  if(torch_archs STREQUAL "")
    set(_wanted 80 90)
  else()
    string(REPLACE "," ";" _wanted "${torch_archs}")
    list(TRANSFORM _wanted REPLACE "^sm_" "")
  endif()
  execute_process(COMMAND "${nvcc}" --list-gpu-code OUTPUT_VARIABLE _supported
                  OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${nvcc} --list-gpu-code failed; set GAPO_CUDA_ARCH (e.g. \"80;90\") to choose the architectures")
  endif()
  string(REGEX REPLACE "[ \t\r\n]+" ";" _supported "${_supported}")
  list(TRANSFORM _supported REPLACE "^sm_" "")

  set(_kept "")
  set(_dropped "")
  foreach(_arch IN LISTS _wanted)
    if(_arch IN_LIST _supported)
      list(APPEND _kept "${_arch}")
    else()
      list(APPEND _dropped "sm_${_arch}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _kept)
  list(SORT _kept COMPARE NATURAL)
  if(_dropped)
    string(REPLACE ";" ", " _dropped "${_dropped}")
    message(STATUS "gapo_kernels: ${nvcc} cannot compile for ${_dropped} (in torch's arch list); skipping them")
  endif()
  if(NOT _kept)
    message(FATAL_ERROR "None of torch's CUDA architectures (${torch_archs}) is supported by ${nvcc}; "
                        "set GAPO_CUDA_ARCH (e.g. \"80;90\") to choose them")
  endif()

  list(GET _kept -1 _newest)
  list(TRANSFORM _kept APPEND "-real")
  list(APPEND _kept "${_newest}-virtual")
  set(${out} "${_kept}" PARENT_SCOPE)
endfunction()

# gapo_check_cuda_major(<nvcc_version> <torch_cuda_version>)
#   The kernels carry their own (static) CUDA runtime, so they need a driver for nvcc's CUDA
#   version, whatever torch needs. A newer major than torch's means machines whose driver runs
#   torch may not run the kernels: stop, unless GAPO_ALLOW_CUDA_MISMATCH=1. An older one works
#   everywhere torch works: say so and go on.
function(gapo_check_cuda_major nvcc_version torch_cuda_version)
  if(torch_cuda_version STREQUAL "")
    return()  # a CPU torch: nothing to match
  endif()
  string(REGEX MATCH "^[0-9]+" _nvcc_major "${nvcc_version}")
  string(REGEX MATCH "^[0-9]+" _torch_major "${torch_cuda_version}")
  if(_nvcc_major EQUAL _torch_major)
    return()
  endif()
  set(_what "torch ${GAPO_TORCH_VERSION} is built with CUDA ${torch_cuda_version}, but the CUDA compiler "
            "found (${CMAKE_CUDA_COMPILER}) is CUDA ${nvcc_version}.")
  if(_nvcc_major LESS _torch_major)
    message(WARNING "${_what} The kernels link their own CUDA ${_nvcc_major} runtime statically and run "
                    "wherever torch's CUDA ${_torch_major} runs.")
    return()
  endif()
  if(NOT GAPO_ALLOW_CUDA_MISMATCH AND DEFINED ENV{GAPO_ALLOW_CUDA_MISMATCH})
    set(GAPO_ALLOW_CUDA_MISMATCH "$ENV{GAPO_ALLOW_CUDA_MISMATCH}")
  endif()
  set(_consequence "Kernels built by CUDA ${_nvcc_major} need an NVIDIA driver for CUDA ${_nvcc_major}, which "
                   "torch itself does not need; on an older driver the CUDA backend reports that it cannot run.")
  if(GAPO_ALLOW_CUDA_MISMATCH)
    message(WARNING "${_what} ${_consequence} (building anyway: GAPO_ALLOW_CUDA_MISMATCH is set)")
  else()
    message(FATAL_ERROR "${_what} ${_consequence}\n"
                        "Either put a CUDA ${_torch_major} toolkit first on PATH (or set CUDACXX to its nvcc), "
                        "or set GAPO_ALLOW_CUDA_MISMATCH=1 to build with this one, "
                        "or set GAPO_WITH_CUDA=OFF for a CPU-only build.")
  endif()
endfunction()
