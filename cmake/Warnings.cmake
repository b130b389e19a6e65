# Compiler warnings as an INTERFACE target: every project target links it.
# PHA_WERROR turns them into errors (CI and the README's test command set it).
add_library(pha_warnings INTERFACE)
target_compile_options(pha_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  -Wmisleading-indentation
  # Designated initializers leave members at their defaults on purpose.
  # (-Wnull-dereference is left out: GCC 12 reports false positives inside
  # libstdc++ and CLI11 at -O2.)
  -Wno-missing-field-initializers)
# GCC only (clang builds the fuzz targets, PHA_FUZZ).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(pha_warnings INTERFACE -Wduplicated-cond -Wlogical-op)
endif()
if(PHA_WERROR)
  target_compile_options(pha_warnings INTERFACE -Werror)
endif()
