# PHA_SANITIZE builds everything with AddressSanitizer and
# UndefinedBehaviorSanitizer; any report aborts the process so tests fail.
# PHA_FUZZ (clang only) instruments the agent for libFuzzer as well
# (-fsanitize=fuzzer-no-link); the fuzz targets link -fsanitize=fuzzer.
add_library(pha_sanitizers INTERFACE)
if(PHA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PHA_FUZZ needs clang (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: "
                        "configure with -DCMAKE_CXX_COMPILER=clang++ (see scripts/fuzz.sh)")
  endif()
  set(_pha_san_flags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                     -fno-omit-frame-pointer)
  target_compile_options(pha_sanitizers INTERFACE ${_pha_san_flags})
  target_link_options(pha_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(PHA_SANITIZE)
  set(_pha_san_flags -fsanitize=address,undefined -fno-sanitize-recover=all
                     -fno-omit-frame-pointer)
  target_compile_options(pha_sanitizers INTERFACE ${_pha_san_flags})
  target_link_options(pha_sanitizers INTERFACE ${_pha_san_flags})
endif()
