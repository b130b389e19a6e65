# PHA_SANITIZE builds everything with AddressSanitizer and
# UndefinedBehaviorSanitizer; any report aborts the process so tests fail.
add_library(pha_sanitizers INTERFACE)
if(PHA_SANITIZE)
  set(_pha_san_flags -fsanitize=address,undefined -fno-sanitize-recover=all
                     -fno-omit-frame-pointer)
  target_compile_options(pha_sanitizers INTERFACE ${_pha_san_flags})
  target_link_options(pha_sanitizers INTERFACE ${_pha_san_flags})
endif()
